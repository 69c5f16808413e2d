"""The counter session of a signaling call, end to end over real sockets: the customer joins (HTTP +
WebSocket), the agent accepts, the agent's API shows the session, the customer's join token reaches
the pending confirmation on their screen."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from counter.appkeys import SESSIONS
from signaling.client import SignalingClient
from tests.calls import live_call


async def test_accepted_call_has_its_counter_session(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    # The customer joins (queued, offered, accepted: both ends told the call started).
    async with live_call(base, claimed_phone="+86 138-0013-8000") as call:
        call_id, csrf, staff_http, phone_http = call.call_id, call.csrf, call.staff_http, call.phone_http
        async with staff_http.get(f"{base}/api/counter/sessions/{call_id}") as resp:
            assert resp.status == 200, await resp.text()
            session = (await resp.json())["session"]
        assert session["agent"] == "agent1" and session["account"] == "13800138000"
        assert session["level"] == "A0"
        # The console opening it again gets the same session (and no customer credential).
        async with staff_http.post(f"{base}/api/counter/sessions", json={"call_id": call_id}, headers=csrf) as resp:
            assert resp.status == 200 and "customer_token" not in await resp.json()

        async with staff_http.post(f"{base}/api/counter/sessions/{call_id}/verify-password",
                                   json={"password": "246810"}, headers=csrf) as resp:
            assert resp.status == 200, await resp.text()
        body = {"code": "datacap.set", "inputs": {"cap_mb": 2048}, "idempotency_key": "cap-1"}
        async with staff_http.post(f"{base}/api/counter/sessions/{call_id}/transactions", json=body,
                                   headers=csrf) as resp:
            assert resp.status == 202, await resp.text()
            tid = (await resp.json())["id"]

        # The customer's page uses its join token for the counter endpoints.
        mine = {"X-Customer-Token": call.token}
        async with phone_http.get(f"{base}/api/customer/counter", headers=mine) as resp:
            assert resp.status == 200, await resp.text()
            state = await resp.json()
        assert [t["id"] for t in state["pending"]] == [tid] and state["pending"][0]["code"] == "datacap.set"
        async with phone_http.post(f"{base}/api/customer/counter/transactions/{tid}/confirm",
                                   json={"accept": True}, headers=mine) as resp:
            assert (await resp.json())["status"] == "done"
        async with phone_http.get(f"{base}/api/customer/counter",
                                  headers={"X-Customer-Token": "not-a-token"}) as resp:
            assert resp.status == 401
        # Someone else's join token reaches nothing of this call.
        other = await SignalingClient.customer(phone_http, base)
        try:
            async with phone_http.get(f"{base}/api/customer/counter",
                                      headers={"X-Customer-Token": other.token or ""}) as resp:
                assert resp.status == 403 and (await resp.json())["error"]["code"] == "not_in_call"
        finally:
            await other.close()
    counter = await app_client.app[SESSIONS].get(call_id)
    assert counter.agent == "agent1" and counter.account == "13800138000"
