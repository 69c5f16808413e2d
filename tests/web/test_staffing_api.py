"""``GET /api/supervisor/staffing``: the Erlang C table for a date, required vs logged-in agents now."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from signaling import protocol as p
from tests.conftest import login
from tests.signaling.conftest import Connect, base_url, connect, fast_signaling

__all__ = ["base_url", "connect", "fast_signaling"]


async def test_staffing_table_and_agents_logged_in(app_client: TestClient[Any, Any], connect: Connect) -> None:
    agent = await connect("agent1")  # skills: general and care
    await agent.send(p.Presence(state="available"))
    await agent.expect(p.PresenceAck)
    assert (await app_client.get("/api/supervisor/staffing")).status == 401
    await login(app_client, "agent2", "agent2-demo")
    assert (await app_client.get("/api/supervisor/staffing")).status == 403
    await login(app_client, "super1", "super1-demo")
    resp = await app_client.get("/api/supervisor/staffing?date=2026-12-07&utc_offset=8")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["date"] == "2026-12-07" and body["method"]["staffing"] == "Erlang C"
    assert len(body["rows"]) == 2 * 48
    assert {r["lane"] for r in body["rows"]} == {"care", "general"}
    assert body["rows"][0]["start"] == "2026-12-07T00:00:00+08:00"
    now = (await (await app_client.get("/api/supervisor/staffing")).json())["now"]
    assert now["general"]["logged_in"] == 1 and now["care"]["logged_in"] == 1
    assert now["care"]["target"] == {"level": 0.9, "answer_s": 15.0}
    assert now["general"]["required"] == 0  # no history: nobody needed
    for bad in ("date=2026-13-01", "date=yesterday", "utc_offset=nan", "utc_offset=99"):
        resp = await app_client.get(f"/api/supervisor/staffing?{bad}")
        assert resp.status == 400, bad


async def test_kpis_route(app_client: TestClient[Any, Any]) -> None:
    await login(app_client, "super1", "super1-demo")
    body = await (await app_client.get("/api/supervisor/kpis?hours=2")).json()
    assert [lane["lane"] for lane in body["lanes"]] == ["care", "general"]
    assert body["short_abandon_s"] == 5.0 and "service_level_25s" in body["lanes"][0]
    assert (await app_client.get("/api/supervisor/kpis?hours=-1")).status == 400
