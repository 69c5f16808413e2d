"""Only the customer can confirm: an agent holding their own session cookie and every string the agent
API and the agent's signaling socket gave them cannot confirm a transaction on the customer's behalf."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from signaling import protocol as p
from signaling.client import SignalingClient


@pytest.fixture(autouse=True)
def no_api_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every candidate string is tried: the per-address API rate limit would answer 429 first."""
    monkeypatch.setenv("COUNTER_RATELIMIT_API", "off")


def _strings(value: Any) -> set[str]:
    """Every string (keys and values) anywhere in a JSON value."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {s for k, v in value.items() for s in (_strings(k) | _strings(v))}
    if isinstance(value, list):
        return {s for v in value for s in _strings(v)}
    return set()


async def test_agent_cannot_confirm_for_the_customer(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    seen: set[str] = set()
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff,
        aiohttp.ClientSession() as phone,
    ):
        customer = await SignalingClient.customer(phone, base)
        agent = await SignalingClient.staff(staff, base, "agent1", "agent1-demo")
        try:
            assert customer.token is not None
            await customer.send(p.Join(claimed_phone="13800138000", face_consent=True))
            await customer.expect(p.QueueStatus)
            await agent.send(p.Presence(state="available"))
            offer = await agent.expect(p.CallOffer)
            call_id = offer.call_id
            await agent.send(p.Accept(call_id=call_id))
            started = await agent.expect(p.CallStarted, call_id=call_id)
            await customer.expect(p.CallStarted, call_id=call_id)
            for message in (agent.welcome, offer, started):
                seen |= _strings(message.model_dump(mode="json") if message is not None else None)

            async with staff.get(f"{base}/api/auth/me") as resp:
                me = await resp.json()
            csrf = {"X-CSRF-Token": me["csrf_token"]}
            seen |= _strings(me)

            async def agent_api(method: str, path: str, body: Any = None) -> Any:
                async with staff.request(method, f"{base}{path}", json=body, headers=csrf) as resp:
                    assert resp.status < 300, (path, await resp.text())
                    data = await resp.json()
                seen.update(_strings(data))
                return data

            sid = f"/api/counter/sessions/{call_id}"
            await agent_api("POST", "/api/counter/sessions", {"call_id": call_id})
            await agent_api("POST", f"{sid}/claim", {"msisdn": "13800138000"})
            await agent_api("POST", f"{sid}/verify-password", {"password": "246810"})
            await agent_api("GET", f"/api/counter/catalog?session={call_id}")
            await agent_api("GET", f"{sid}/account")
            await agent_api("GET", f"{sid}/identity")
            tx = await agent_api("POST", f"{sid}/transactions",
                                 {"code": "datacap.set", "inputs": {"cap_mb": 1024}, "idempotency_key": "cap"})
            await agent_api("GET", sid)
            assert tx["status"] == "pending"
            assert customer.token not in seen

            confirm = f"{base}/api/customer/counter/transactions/{tx['id']}/confirm"
            for candidate in [*sorted(seen), ""]:
                headers = {**csrf, "X-Customer-Token": candidate} if candidate else csrf
                async with staff.post(confirm, json={"accept": True}, headers=headers) as resp:
                    assert resp.status == 401, (candidate, resp.status, await resp.text())
            session = await agent_api("GET", sid)
            assert [t["status"] for t in session["transactions"]] == ["pending"]

            async with phone.post(confirm, json={"accept": True},
                                  headers={"X-Customer-Token": customer.token}) as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "done"
        finally:
            await customer.close()
            await agent.close()
