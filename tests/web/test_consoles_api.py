"""The consoles' glue: login page redirects by role, the agents' queue view, the counter KPIs."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from counter.appkeys import SESSIONS
from tests.conftest import login


async def test_login_page_sends_each_role_to_its_console(app_client: TestClient[Any, Any]) -> None:
    resp = await app_client.get("/login", allow_redirects=False)
    assert resp.status == 200 and "login-form" in await resp.text()
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    for user, password, home in [
        ("agent1", "agent1-demo", "/agent"),
        ("super1", "super1-demo", "/supervisor"),
        ("audit1", "audit1-demo", "/auditor"),
    ]:
        client: TestClient[Any, Any] = TestClient(app_client.server)
        try:
            await login(client, user, password)
            resp = await client.get("/login", allow_redirects=False)
            assert resp.status == 302 and resp.headers["Location"] == home
            assert (await (await client.get("/api/consoles/home")).json())["home"] == home
            headers = {"X-CSRF-Token": (await (await client.get("/api/auth/me")).json())["csrf_token"]}
            await client.post("/api/auth/logout", headers=headers)
            assert (await client.get("/api/consoles/home")).status == 401
            assert (await client.get("/login", allow_redirects=False)).status == 200
        finally:
            await client.session.close()


async def test_kpis_count_first_contact_resolution_satisfaction_and_handle_time(
    app_client: TestClient[Any, Any],
) -> None:
    sessions = app_client.app[SESSIONS]
    for i, (wrap, rating) in enumerate([("resolved", 5), ("resolved", 4), ("work_order", 2), ("transferred", None)]):
        await sessions.open(f"kpi-{i}", "agent1")
        if rating is not None:
            await sessions.rate(f"kpi-{i}", rating)
        await sessions.close(f"kpi-{i}", wrap)
    await sessions.open("kpi-open", "agent2")
    await login(app_client, "super1", "super1-demo")
    kpis = await (await app_client.get("/api/consoles/kpis?hours=24")).json()
    assert kpis["sessions"] == 5 and kpis["closed"] == 4
    assert kpis["first_contact_resolution"] == 0.5
    assert kpis["satisfaction"] == round(11 / 3, 2) and kpis["rating_counts"] == [0, 1, 0, 1, 1]
    assert kpis["avg_handle_s"] is not None and kpis["avg_handle_s"] >= 0
    assert sum(kpis["sessions_per_hour"]) == 5 and len(kpis["sessions_per_hour"]) == 24
    assert kpis["closed_by_agent"] == {"agent1": 4}
    assert (await app_client.get("/api/consoles/kpis?hours=nope")).status == 400


async def test_agents_see_lanes_without_other_agents(app_client: TestClient[Any, Any]) -> None:
    resp = await app_client.post("/api/customer/join", json={"care": True})
    assert resp.status == 200
    await login(app_client, "agent2", "agent2-demo")
    body = await (await app_client.get("/api/consoles/queue")).json()
    assert set(body["lanes"]) == {"care", "general"}
    assert "agents" not in body
    assert (await (await app_client.get("/api/consoles/wrap-ups")).json())["wrap_ups"][0]["code"] == "resolved"


async def test_auditor_session_record_is_itself_audited(app_client: TestClient[Any, Any]) -> None:
    sessions = app_client.app[SESSIONS]
    await sessions.open("rec-1", "agent1")
    await sessions.claim_account("rec-1", "13800138000")
    await sessions.set_face_consent("rec-1", True)
    await sessions.rate("rec-1", 4, "ok")
    await login(app_client, "agent1", "agent1-demo")
    assert (await app_client.get("/api/consoles/sessions/rec-1")).status == 403
    await login(app_client, "audit1", "audit1-demo")
    assert (await app_client.get("/api/consoles/sessions/nope")).status == 404
    record = await (await app_client.get("/api/consoles/sessions/rec-1")).json()
    assert record["face_consent"] is True and record["rating"] == 4 and record["account"] == "13800138000"
    logged = await (await app_client.get(f"/api/audit/entries/{record['view_logged_as']}")).json()
    assert logged["entry"]["action"] == "auditor.view_session" and logged["entry"]["actor_id"] == "audit1"
    assert logged["entry"]["session_id"] == "rec-1" and logged["entry"]["account"] != "13800138000"
