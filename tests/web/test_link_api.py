"""The call's connection figures: sent by the call's agent while connected, read by supervisors."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.calls import live_call
from tests.conftest import login

FIGURES = {"samples": 30, "rtt_ms": 42.0, "loss_pct": 0.5, "up_kbps": 610.0, "down_kbps": 590.0,
           "audio_only_s": 12, "worst": "poor"}


async def test_agent_sends_supervisor_reads(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with live_call(base, ssl=False) as call:
        status, body = await call.staff("POST", f"/api/calls/{call.call_id}/link", json=FIGURES)
        assert status == 200, body
        status, body = await call.staff("POST", f"/api/calls/{call.call_id}/link", json={**FIGURES, "samples": 31})
        assert status == 200, body
        bad = await call.staff("POST", f"/api/calls/{call.call_id}/link", json={**FIGURES, "loss_pct": 101})
        extra = await call.staff("POST", f"/api/calls/{call.call_id}/link", json={**FIGURES, "note": "x"})
        other = await call.staff("POST", "/api/calls/not-this-call/link", json=FIGURES)
        agent_reads = await call.staff("GET", f"/api/calls/{call.call_id}/link")
        await login(app_client, "super1", "super1-demo")
        resp = await app_client.get(f"/api/calls/{call.call_id}/link")
        read = (resp.status, await resp.json())
    assert bad[0] == 400 and extra[0] == 400, (bad, extra)
    assert other[0] == 409, other
    assert agent_reads[0] == 403, agent_reads
    assert read[0] == 200, read
    row = read[1]
    assert (row["samples"], row["worst"], row["audio_only_s"], row["agent"]) == (31, "poor", 12, "agent1"), row
