"""Scheduled call-backs: booked by a waiting customer, in the agent's console at its time, started (the
invitation texted, the call routed to that agent ahead of others), outcome recorded, audited."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from counter.appkeys import CALLBACKS, DB
from counter.callbacks import DUE_AHEAD_S
from signaling import protocol as p
from signaling.client import SignalingClient
from tests.conftest import login
from tests.signaling.conftest import Connect, base_url, connect, fast_signaling

__all__ = ["base_url", "connect", "fast_signaling"]
PHONE = "13700137001"


async def test_booked_due_started_routed_and_recorded(app_client: TestClient[Any, Any], connect: Connect,
                                                      base_url: str) -> None:
    app = app_client.server.app
    agent = await connect("agent1")  # away for now
    customer = await connect()
    await customer.send(p.Join())
    await customer.expect(p.QueueStatus)
    token = customer.token
    later_at = time.time() + 3600
    for bad, status in (({"msisdn": "123"}, 400), ({"preferred_at": "soon"}, 400), ({"token": "nope"}, 403),
                        ({"preferred_at": time.time() + 30 * 86400}, 400)):
        body = {"token": token, "msisdn": PHONE, "preferred_at": later_at, **bad}
        assert (await app_client.post("/api/customer/callbacks", json=body)).status == status, bad
    resp = await app_client.post("/api/customer/callbacks", json={"token": token, "msisdn": PHONE,
                                                                  "preferred_at": later_at})
    assert resp.status == 201, await resp.text()
    booked = (await resp.json())["id"]
    # in the console at its time, not before
    assert booked not in [c.id for c in await app[CALLBACKS].due(["general"], now=later_at - DUE_AHEAD_S - 1)]
    assert booked in [c.id for c in await app[CALLBACKS].due(["general"], now=later_at)]
    soon = await app_client.post("/api/customer/callbacks", json={"token": token, "msisdn": PHONE,
                                                                  "preferred_at": time.time() + 60})
    due_now = (await soon.json())["id"]
    headers = await login(app_client, "agent1", "agent1-demo")
    listed = (await (await app_client.get("/api/consoles/callbacks")).json())["callbacks"]
    assert [c["id"] for c in listed] == [due_now] and listed[0]["msisdn"] == "*******7001"

    waiting = await connect()  # someone already waiting: the invited customer still goes to agent1
    await waiting.send(p.Join())
    await waiting.expect(p.QueueStatus)
    started = await (await app_client.post(f"/api/consoles/callbacks/{due_now}/start", headers=headers)).json()
    assert started["status"] == "started" and started["agent"] == "agent1"
    again = await app_client.post(f"/api/consoles/callbacks/{due_now}/start", headers=headers)
    assert again.status == 409
    text = await app[DB].fetchval("SELECT body FROM sms_outbox WHERE msisdn = $1 ORDER BY id DESC", PHONE)
    invite = re.search(r"/customer\?invite=([\w-]+)", str(text))
    assert invite is not None, text
    async with aiohttp.ClientSession() as http:
        invited = await SignalingClient.connect(http, base_url, invite.group(1))
        try:
            await invited.send(p.Join())
            await invited.expect(p.QueueStatus)
            await agent.send(p.Presence(state="available"))
            offer = await agent.expect(p.CallOffer)
            assert offer.call_id == started["call_id"]
            await agent.send(p.Accept(call_id=offer.call_id))
            await invited.expect(p.CallStarted)
        finally:
            await invited.close()

    bad = await app_client.post(f"/api/consoles/callbacks/{due_now}/outcome", json={"outcome": "great"},
                                headers=headers)
    assert bad.status == 400
    other = await login(app_client, "agent2", "agent2-demo")
    refused = await app_client.post(f"/api/consoles/callbacks/{due_now}/outcome", json={"outcome": "resolved"},
                                    headers=other)
    assert refused.status == 403
    headers = await login(app_client, "agent1", "agent1-demo")
    done = await (await app_client.post(f"/api/consoles/callbacks/{due_now}/outcome", json={"outcome": "resolved"},
                                        headers=headers)).json()
    assert (done["status"], done["outcome"]) == ("done", "resolved")
    assert [h["status"] for h in done["history"]] == ["scheduled", "started", "done"]
    actions = [r["action"] for r in await app[DB].fetch(
        "SELECT action FROM audit_entries WHERE action LIKE 'callback.%' ORDER BY seq")]
    assert actions == ["callback.booked", "callback.booked", "callback.started", "callback.outcome"]


async def test_garbage_on_the_public_routes_is_a_clear_4xx(app_client: TestClient[Any, Any]) -> None:
    bodies = [b"", b"[]", b"{", b"null", b'{"code": 5}', b'{"code": ""}', b'{"code": "' + b"x" * 100 + b'"}',
              b'{"token": null, "msisdn": "13800138000", "preferred_at": 1e308}',
              b'{"token": "t", "msisdn": "13800138000", "preferred_at": true}',
              b'{"token": "t", "msisdn": "13800138000", "preferred_at": NaN}',
              b'{"token": "t", "msisdn": 13800138000, "preferred_at": 1}']
    for path in ("/api/customer/hold/return", "/api/customer/callbacks"):
        for body in bodies:
            resp = await app_client.post(path, data=body, headers={"Content-Type": "application/json"})
            assert 400 <= resp.status < 500, (path, body, resp.status, await resp.text())
