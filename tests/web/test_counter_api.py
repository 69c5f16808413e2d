"""The counter HTTP API end to end: agent runs a transaction, the customer confirms, A4 approval."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp.test_utils import TestClient

from counter.appkeys import DB, SESSIONS
from counter.audit import AUDIT
from counter.guessing import SERVICE_PASSWORD
from counter.levels import Method
from counter.proofs import ProofKind
from counter.sessions import Level
from counter.sms import SMS, BuiltinGateway
from tests.calls import live_call
from tests.conftest import login
from tests.counter.txkit import raise_on_proofs


async def test_agent_customer_and_supervisor_flow(app_client: TestClient[Any, Any]) -> None:
    sessions = app_client.app[SESSIONS]
    async with live_call(str(app_client.make_url("")), claimed_phone="13800138000", face_consent=True) as call:
        sid = call.call_id
        tx = f"/api/counter/sessions/{sid}/transactions"
        # Below the level: the catalog says why, and a run is refused with the reason.
        status, cat = await call.staff("GET", f"/api/counter/catalog?session={sid}")
        puk = next(t for t in cat["transactions"] if t["code"] == "puk.query")
        assert puk["enabled"] is False and "needs A3" in puk["why_not"]
        assert puk["needs_confirmation"] and puk["shown_to_customer_only"] == ["puk"]
        password = {"password": "246810"}
        status, body = await call.staff("POST", f"/api/counter/sessions/{sid}/verify-password", json=password)
        assert status == 200 and body["session"]["level"] == "A1"
        # A look-up waits for the customer's confirmation on their own screen too.
        balance = {"code": "balance.query", "inputs": {}, "idempotency_key": "b1"}
        status, asked = await call.staff("POST", tx, json=balance)
        assert status == 202 and asked["status"] == "pending" and not asked["result"], asked
        async with call.phone_http.get(call.url("/api/customer/counter")) as resp:
            assert resp.status == 401  # no token: not the customer
        status, mine = await call.phone("GET", "/api/customer/counter")
        assert [p["id"] for p in mine["pending"]] == [asked["id"]]
        assert mine["pending"][0]["confirm"]["title_zh"] == "余额查询"
        status, done = await call.phone(
            "POST", f"/api/customer/counter/transactions/{asked['id']}/confirm", json={"accept": True}
        )
        assert status == 200 and done["status"] == "done" and "86.50" in done["text_zh"], done
        # A state change the same way.
        await raise_on_proofs(sessions, sid, Level.A2, Method.FACE, ProofKind.FACE_MATCH, ProofKind.LIVENESS)
        body = {"code": "roaming.set", "inputs": {"enabled": True}, "idempotency_key": "r1"}
        status, pending = await call.staff("POST", tx, json=body)
        assert status == 202
        status, mine = await call.phone("GET", "/api/customer/counter")
        assert [p["id"] for p in mine["pending"]] == [pending["id"]]
        what = mine["pending"][0]["confirm"]["what_zh"]
        assert "国际漫游" in what and "开通" in what, what
        status, done = await call.phone(
            "POST", f"/api/customer/counter/transactions/{pending['id']}/confirm", json={"accept": True}
        )
        assert done["status"] == "done"
        # Another agent cannot read this session's account.
        await login(app_client, "agent2", "agent2-demo")
        assert (await app_client.get(f"/api/counter/sessions/{sid}/account")).status == 403
        # A4: approved by the supervisor (not by the requesting agent).
        await raise_on_proofs(sessions, sid, Level.A3, Method.IDCARD, ProofKind.ID_CARD, ProofKind.FACE_MATCH)
        status, pending = await call.staff("POST", tx, json={"code": "sim.replace", "inputs": {"esim": True},
                                                            "idempotency_key": "s1"})
        tid = pending["id"]
        await call.phone("POST", f"/api/customer/counter/transactions/{tid}/confirm", json={"accept": True})
        assert (await call.staff("POST", f"/api/counter/approvals/{tid}"))[0] == 403
        sup = await login(app_client, "super1", "super1-demo")
        resp = await app_client.post(f"/api/counter/approvals/{tid}", headers=sup)
        assert (await resp.json())["status"] == "done"
    spec = await (await app_client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.1") and "/api/counter/sessions/{sid}/transactions" in spec["paths"]
    assert "Tx_puk_query" in spec["components"]["schemas"]


async def test_a1_by_sms_code_over_http(app_client: TestClient[Any, Any]) -> None:
    async with live_call(str(app_client.make_url(""))) as call:
        await _sms_code(app_client, call.call_id)


async def _sms_code(app_client: TestClient[Any, Any], sid: str) -> None:
    agent = await login(app_client, "agent1", "agent1-demo")
    assert (await app_client.post("/api/counter/sessions", json={"call_id": sid}, headers=agent)).status == 200
    resp = await app_client.post(f"/api/counter/sessions/{sid}/sms-code", headers=agent)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "no_account"
    await app_client.post(f"/api/counter/sessions/{sid}/claim", json={"msisdn": "13800138000"}, headers=agent)
    resp = await app_client.post(f"/api/counter/sessions/{sid}/sms-code", headers=agent)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["sent_to"] == "138****8000"
    gateway = app_client.app[SMS].gateway
    assert isinstance(gateway, BuiltinGateway)
    body = (await asyncio.wait_for(gateway.wait_for("13800138000", 1), 30))[-1]
    code = re.search(r"(\d{6})", body).group(1)  # type: ignore[union-attr]
    # Sent: the outbox keeps the text with the code masked.
    kept = await app_client.app[DB].fetchval("SELECT body FROM sms_outbox WHERE msisdn = '13800138000'"
                                            " AND sent_at IS NOT NULL ORDER BY id DESC LIMIT 1")
    assert code not in str(kept) and "******" in str(kept), kept
    url = f"/api/counter/sessions/{sid}/verify-sms-code"
    resp = await app_client.post(url, json={"code": "12345"}, headers=agent)
    assert resp.status == 400
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    resp = await app_client.post(url, json={"code": wrong}, headers=agent)
    error = (await resp.json())["error"]
    assert resp.status == 403 and error["code"] == "wrong_code" and error["attempts_left"] == 4
    resp = await app_client.post(url, json={"code": code}, headers=agent)
    session = (await resp.json())["session"]
    assert resp.status == 200 and session["level"] == "A1" and session["level_method"] == "sms_code"


async def test_catalog_engine_and_console_give_the_same_why_not(app_client: TestClient[Any, Any]) -> None:
    """Face declined, A1 by password: the catalog's why-not names the attestation (what the server then
    allows), in English and Chinese, and a refused run gives the very same words."""
    async with live_call(str(app_client.make_url("")), claimed_phone="13800138000", face_consent=False) as call:
        await call.staff("POST", f"/api/counter/sessions/{call.call_id}/verify-password", json={"password": "246810"})
        status, body = await call.staff("GET", f"/api/counter/catalog?session={call.call_id}")
        assert status == 200
        item = next(t for t in body["transactions"] if t["code"] == "line.suspend")
        assert item["enabled"] is False and item["why_not_code"] == "level"
        assert "attest" in item["why_not"] and "人脸核验" not in item["why_not_zh"], item
        status, body = await call.staff("GET", f"/api/counter/sessions/{call.call_id}")
        steps = body["session"]["steps"]
        assert body["session"]["path"] == "attestation"
        assert steps["face"]["possible"] is False and steps["face"]["code"] == "face_declined"
        assert steps["attestation"]["possible"] is True
        status, out = await call.staff("POST", f"/api/counter/sessions/{call.call_id}/transactions",
                                       json={"code": "line.suspend", "inputs": {}, "idempotency_key": "k1"})
        assert out["status"] == "refused", out
        assert (out["reason"], out["reason_zh"]) == (item["why_not"], item["why_not_zh"])


async def test_a1_by_password_is_one_audit_entry_naming_the_servers_check(app_client: TestClient[Any, Any]) -> None:
    """The level change by service password is audited once, with the proof the server recorded; a
    wrong password is audited as refused and changes nothing."""
    async with live_call(str(app_client.make_url("")), claimed_phone="13800138000", face_consent=True) as call:
        url = f"/api/counter/sessions/{call.call_id}/verify-password"
        status, body = await call.staff("POST", url, json={"password": "000000"})
        assert status == 403 and body["error"]["code"] == "wrong_password"
        status, body = await call.staff("POST", url, json={"password": "246810"})
        assert status == 200 and body["session"]["level"] == "A1"
        audit = app_client.app[AUDIT]
        [change] = [e["entry"] for e in await audit.search(action="session.level", session_id=call.call_id)]
        assert change["details"]["method"] == "password" and change["details"]["level"] == "A1"
        assert change["actor_id"] == "agent1" and "246810" not in str(change)
        [proof] = await app_client.app[SESSIONS].proofs.of_session(call.call_id, [ProofKind.PASSWORD])
        assert change["evidence"] == [proof.sha] == body["session"]["evidence"][-1]["evidence"]
        [wrong] = [e["entry"] for e in await audit.search(action="identity.password", session_id=call.call_id)]
        assert wrong["outcome"] == "refused" and "000000" not in str(wrong)


async def test_no_level_from_a_hash_the_agent_sends(app_client: TestClient[Any, Any]) -> None:
    """Face declined, A1: the console cannot raise A2 by sending a sha256 of its own (the old
    ``POST .../attest``); the attestation cites only what the server stored, and without any it is refused."""
    async with live_call(str(app_client.make_url("")), claimed_phone="13800138000", face_consent=False) as call:
        base = f"/api/counter/sessions/{call.call_id}"
        await call.staff("POST", f"{base}/verify-password", json={"password": "246810"})
        status, _ = await call.staff("POST", f"{base}/attest", json={"evidence": ["a" * 64]})
        assert status in (404, 405)
        status, body = await call.staff("POST", f"{base}/identity/attest", json={"confirm": True})
        assert status in (409, 503), body  # nothing stored to attest on (or no models here)
        status, body = await call.staff("GET", base)
        assert body["session"]["level"] == "A1"


async def test_service_password_tries_are_limited_per_line_across_sessions(app_client: TestClient[Any, Any]) -> None:
    """Wrong service passwords count for the line, not the session: a new call does not start afresh,
    and once the line is locked even the right password waits.  Each try and the lock are audited."""
    base = str(app_client.make_url(""))
    answers = []
    for tries in (3, SERVICE_PASSWORD.free - 3):
        async with live_call(base, claimed_phone="13900139000") as call:
            for password in ["135790"] * tries + (["246810"] if tries != 3 else []):
                status, body = await call.staff("POST", f"/api/counter/sessions/{call.call_id}/verify-password",
                                                json={"password": password})
                answers.append((status, body["error"]["code"] if status != 200 else "ok"))
    assert answers == [(403, "wrong_password")] * SERVICE_PASSWORD.free + [(429, "password_locked")]
    audit = app_client.app[AUDIT]
    await audit.flush()
    entries = [e["entry"] for e in await audit.search(action="identity.password")]
    assert [e["outcome"] for e in entries] == ["refused"] * len(answers)
    assert entries[-2]["details"]["failures_on_line"] == SERVICE_PASSWORD.free
    assert entries[-1]["details"] == {"locked": True}
