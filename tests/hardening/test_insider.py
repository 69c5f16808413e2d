"""The insider agent: a valid agent login trying to act on a line without its holder present.

Played against a real server over HTTP and the signaling socket (docs/THREAT_MODEL.md, "Insider
agent").  Every attempt is refused with a clear 4xx code, and a refusal that names a line is an
audit entry; an independent re-count of the entries matches what each client was told.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from counter.audit import AUDIT
from signaling import protocol as p
from signaling.client import SignalingClient
from tests.calls import live_call
from tests.conftest import login

LINE = "13500135000"


async def _status(resp: aiohttp.ClientResponse | Any) -> tuple[int, str | None]:
    body = await resp.json() if resp.content_type == "application/json" else {}
    return resp.status, (body.get("error") or {}).get("code")


async def _refusals(app_client: TestClient[Any, Any], session_id: str) -> list[dict[str, Any]]:
    audit = app_client.app[AUDIT]
    await audit.flush()
    return [e["entry"] for e in await audit.search(action="session.refused", session_id=session_id)]


async def test_no_session_for_a_made_up_or_unaccepted_call(app_client: TestClient[Any, Any]) -> None:
    agent = await login(app_client, "agent1", "agent1-demo")
    # A call id out of thin air.
    resp = await app_client.post("/api/counter/sessions", json={"call_id": "any-string"}, headers=agent)
    assert await _status(resp) == (404, "no_live_call")
    resp = await app_client.post("/api/counter/sessions/any-string/claim", json={"msisdn": LINE}, headers=agent)
    assert await _status(resp) == (404, "no_session")
    assert await _status(await app_client.get("/api/counter/sessions/any-string/account")) == (404, "no_session")
    # A join token the agent minted: its call was never queued, let alone accepted.
    resp = await app_client.post("/api/customer/join", json={}, headers=agent)
    joined = await resp.json()
    assert resp.status == 200, joined
    resp = await app_client.post("/api/counter/sessions", json={"call_id": joined["call_id"]}, headers=agent)
    assert await _status(resp) == (404, "no_live_call")
    customer = {"X-Customer-Token": joined["token"]}
    phone: TestClient[Any, Any] = TestClient(app_client.server)  # the token used as a customer would: no cookie
    try:
        assert await _status(await phone.get("/api/customer/counter", headers=customer)) == (403, "not_in_call")
        resp = await phone.post("/api/customer/counter/transactions/1/confirm", json={"accept": True},
                                headers=customer)
        assert await _status(resp) == (403, "not_in_call")
    finally:
        await phone.session.close()
    # A customer waiting in the queue, not accepted: no session either.
    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as phone:
        waiting = await SignalingClient.customer(phone, base)
        try:
            await waiting.send(p.Join(claimed_phone=LINE))
            await waiting.expect(p.QueueStatus)
            assert waiting.welcome is not None
            resp = await app_client.post("/api/counter/sessions", json={"call_id": waiting.welcome.id},
                                         headers=agent)
            assert await _status(resp) == (404, "no_live_call")
        finally:
            await waiting.close()


async def test_after_hang_up_the_account_and_the_token_are_closed(app_client: TestClient[Any, Any]) -> None:
    """The session ends with the call: no account read, no change requested, no confirmation with
    the old join token (which no longer extends or reopens anything); the wrap-up still closes it."""
    base = str(app_client.make_url(""))
    async with live_call(base, claimed_phone=LINE) as call:
        sid = call.call_id
        assert (await call.staff("POST", f"/api/counter/sessions/{sid}/verify-password",
                                 json={"password": "246810"}))[0] == 200
        assert (await call.staff("GET", f"/api/counter/sessions/{sid}/account"))[0] == 200
        status, pending = await call.staff("POST", f"/api/counter/sessions/{sid}/transactions", json={
            "code": "datacap.set", "inputs": {"cap_mb": 1024}, "idempotency_key": "cap-before-hangup"})
        assert status == 202, pending
        await call.hang_up()

        status, body = await call.staff("GET", f"/api/counter/sessions/{sid}/account")
        assert (status, body["error"]["code"]) == (409, "no_live_call")
        status, body = await call.staff("POST", f"/api/counter/sessions/{sid}/transactions", json={
            "code": "roaming.set", "inputs": {"enabled": True}, "idempotency_key": "after-hangup"})
        assert (status, body["error"]["code"]) == (409, "no_live_call")
        status, body = await call.staff("POST", f"/api/counter/sessions/{sid}/verify-password",
                                        json={"password": "246810"})
        assert (status, body["error"]["code"]) == (409, "no_live_call")
        # The request that waited is refused, audited once; the old token confirms nothing.
        status, body = await call.phone("POST", f"/api/customer/counter/transactions/{pending['id']}/confirm",
                                        json={"accept": True})
        assert (status, body["error"]["code"]) == (403, "call_ended")
        status, session = await call.staff("GET", f"/api/counter/sessions/{sid}")
        assert status == 200 and [t["status"] for t in session["transactions"]] == ["refused"]
        assert "call ended" in session["transactions"][0]["reason"]
        # The token is dead for signaling too: it does not open a new call under the same id.
        async with aiohttp.ClientSession() as http:
            try:
                again = await SignalingClient.connect(http, base, call.token)
            except Exception as exc:  # refused at hello
                assert "bad_token" in str(exc) or "join again" in str(exc), exc
            else:
                await again.close()
                raise AssertionError("the join token of an ended call said hello again")
        # Rating the call is still possible for a while, and the wrap-up closes the session.
        assert (await call.phone("POST", "/api/customer/counter/rating", json={"rating": 5}))[0] == 200
        assert (await call.staff("POST", f"/api/counter/sessions/{sid}/close", json={"wrap_up": "resolved"}))[0] == 200

    refusals = await _refusals(app_client, sid)
    told = [("agent", "no_live_call")] * 3 + [("customer", "call_ended")]
    assert sorted((e["actor_role"], e["details"]["code"]) for e in refusals) == sorted(told)
    assert all(e["outcome"] == "refused" for e in refusals)
    audit = app_client.app[AUDIT]
    tx_entries = await audit.search(action="transaction.datacap", session_id=sid)
    assert [e["entry"]["outcome"] for e in tx_entries] == ["refused"]


async def test_another_agents_work_order_is_out_of_reach(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url(""))
    async with live_call(base, claimed_phone=LINE) as call:
        sid = call.call_id
        await call.staff("POST", f"/api/counter/sessions/{sid}/verify-password", json={"password": "246810"})
        status, tx = await call.staff("POST", f"/api/counter/sessions/{sid}/transactions", json={
            "code": "complaint.register", "inputs": {"category": "billing", "description": "charged twice"},
            "idempotency_key": "complaint-1"})
        assert status == 202, tx
        status, done = await call.phone("POST", f"/api/customer/counter/transactions/{tx['id']}/confirm",
                                        json={"accept": True})
        assert status == 200 and done["status"] == "done", done
        status, orders = await call.staff("GET", f"/api/counter/workorders?session={sid}")
        [order] = orders["work_orders"]

    other = await login(app_client, "agent2", "agent2-demo")
    wid = order["id"]
    resp = await app_client.post(f"/api/counter/workorders/{wid}/status", json={"status": "resolved"},
                                 headers=other)
    assert await _status(resp) == (403, "not_your_work_order")
    resp = await app_client.post(f"/api/counter/workorders/{wid}/callback", json={"outcome": "satisfied"},
                                 headers=other)
    assert await _status(resp) == (403, "not_your_work_order")
    assert await _status(await app_client.get("/api/counter/workorders?assigned=me")) == (200, None)
    assert (await (await app_client.get("/api/counter/workorders?assigned=me")).json())["work_orders"] == []
    # A supervisor assigns it to agent2, who may then move it on; agent1 no longer may.
    sup = await login(app_client, "super1", "super1-demo")
    resp = await app_client.post(f"/api/counter/workorders/{wid}/assign", json={"agent": "agent2"}, headers=sup)
    assert resp.status == 200 and (await resp.json())["assigned_to"] == "agent2"
    other = await login(app_client, "agent2", "agent2-demo")
    mine = await (await app_client.get("/api/counter/workorders?assigned=me")).json()
    assert [o["id"] for o in mine["work_orders"]] == [wid]
    resp = await app_client.post(f"/api/counter/workorders/{wid}/status", json={"status": "in_progress"},
                                 headers=other)
    assert resp.status == 200, await resp.text()
    first = await login(app_client, "agent1", "agent1-demo")
    resp = await app_client.post(f"/api/counter/workorders/{wid}/status", json={"status": "resolved"},
                                 headers=first)
    assert await _status(resp) == (403, "not_your_work_order")


async def test_no_level_and_no_confirmation_from_the_agents_own_words(app_client: TestClient[Any, Any]) -> None:
    """Face declined, A1 by password: a made-up hash raises nothing, an attestation with nothing the
    server stored is refused, and a confirm step carrying the console's wording is refused."""
    async with live_call(str(app_client.make_url("")), claimed_phone=LINE, face_consent=False) as call:
        sid, base = call.call_id, f"/api/counter/sessions/{call.call_id}"
        assert (await call.staff("POST", f"{base}/verify-password", json={"password": "246810"}))[0] == 200
        status, _ = await call.staff("POST", f"{base}/attest", json={"evidence": ["ab" * 32]})
        assert status in (404, 405)  # no such door any more
        status, body = await call.staff("POST", f"{base}/identity/attest", json={"confirm": True})
        assert status == 409, body  # nothing this session's customer sent, no live video: nothing to attest on
        status, tx = await call.staff("POST", f"{base}/transactions", json={
            "code": "datacap.set", "inputs": {"cap_mb": 1024}, "idempotency_key": "words-1"})
        assert status == 202, tx
        await call.agent.send({"type": "push_step", "call_id": sid, "step_id": "lie", "step": "confirm",
                               "params": {"transaction_id": tx["id"], "title_zh": "余额查询",
                                          "what_zh": "只是查一下余额"}})
        refused = await call.agent.expect(p.ErrorMsg)
        assert refused.code == "invalid", refused
        status, mine = await call.phone("GET", "/api/customer/counter")
        assert "余额" not in str(mine) and mine["pending"][0]["confirm"]["title_zh"] == "流量封顶", mine
        status, session = await call.staff("GET", base)
        assert session["session"]["level"] == "A1"
    audit = app_client.app[AUDIT]
    await audit.flush()
    levels = [e["entry"] for e in await audit.search(action="session.level", session_id=sid)]
    assert [e["details"]["level"] for e in levels] == ["A1"], levels


async def test_the_log_says_what_each_client_was_told(app_client: TestClient[Any, Any]) -> None:
    """A journey of refusals and changes; then an independent re-count of the session's entries
    matches the answers the agent's and the customer's clients got, one entry each."""
    told: list[tuple[str, str]] = []  # (action, outcome) as the clients were answered
    async with live_call(str(app_client.make_url("")), claimed_phone=LINE) as call:
        sid, base = call.call_id, f"/api/counter/sessions/{call.call_id}"
        status, body = await call.staff("POST", f"{base}/verify-password", json={"password": "000000"})
        assert status == 403
        told.append(("identity.password", "refused"))
        status, body = await call.staff("POST", f"{base}/verify-password", json={"password": "246810"})
        assert status == 200 and body["session"]["level"] == "A1"
        told.append(("session.level", "ok"))
        status, body = await call.staff("POST", f"{base}/transactions", json={
            "code": "roaming.set", "inputs": {"enabled": True}, "idempotency_key": "t-roam"})
        assert (status, body["status"]) == (200, "refused")  # A2 needed
        told.append(("transaction.roaming.set", "refused"))
        for key, code, inputs, accept in (("t-bal", "balance.query", {}, False),
                                          ("t-cap", "datacap.set", {"cap_mb": 512}, True)):
            status, tx = await call.staff("POST", f"{base}/transactions", json={
                "code": code, "inputs": inputs, "idempotency_key": key})
            assert status == 202, tx
            status, out = await call.phone("POST", f"/api/customer/counter/transactions/{tx['id']}/confirm",
                                           json={"accept": accept})
            assert status == 200 and out["status"] == ("done" if accept else "declined"), out
            told.append((f"transaction.{code}", "ok" if accept else "refused"))
        await call.hang_up()
        status, body = await call.staff("GET", f"{base}/account")
        assert status == 409
        told.append(("session.refused", "refused"))
    audit = app_client.app[AUDIT]
    await audit.flush()
    logged = [(e["entry"]["action"], e["entry"]["outcome"]) for e in await audit.search(session_id=sid, limit=1000)
              if not e["entry"]["action"].startswith(("call.", "consent.", "recording."))]
    assert sorted(logged) == sorted(told), (logged, told)
