"""The counter HTTP API end to end: agent runs a transaction, the customer confirms, A4 approval."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from counter.appkeys import DB
from counter.sessions import Level
from tests.calls import live_call
from tests.conftest import login
from web.counter_api import SESSIONS


async def test_agent_customer_and_supervisor_flow(app_client: TestClient[Any, Any]) -> None:
    phone: TestClient[Any, Any] = TestClient(app_client.server)  # the customer's own browser: no staff cookie
    joined = await (await phone.post("/api/customer/join")).json()  # the customer's credential: the join token
    token, sid = joined["token"], joined["call_id"]
    agent = await login(app_client, "agent1", "agent1-demo")
    resp = await app_client.post("/api/counter/sessions", json={"call_id": sid}, headers=agent)
    assert resp.status == 201, await resp.text()
    assert "customer_token" not in await resp.json()
    resp = await app_client.post(f"/api/counter/sessions/{sid}/claim", json={"msisdn": "13800138000"}, headers=agent)
    assert resp.status == 200
    # Below the level: the catalog says why, and a run is refused with the reason.
    cat = await (await app_client.get(f"/api/counter/catalog?session={sid}")).json()
    puk = next(t for t in cat["transactions"] if t["code"] == "puk.query")
    assert puk["enabled"] is False and "needs A3" in puk["why_not"]
    resp = await app_client.post(
        f"/api/counter/sessions/{sid}/verify-password", json={"password": "246810"}, headers=agent
    )
    assert resp.status == 200 and (await resp.json())["session"]["level"] == "A1"
    body = {"code": "balance.query", "inputs": {}, "idempotency_key": "b1"}
    resp = await app_client.post(f"/api/counter/sessions/{sid}/transactions", json=body, headers=agent)
    result = await resp.json()
    assert result["status"] == "done" and "86.50" in result["text_zh"]
    # A state change waits for the customer's confirmation on their own screen.
    sessions = app_client.app[SESSIONS]
    await sessions.set_face_consent(sid, True)
    await sessions.raise_level(sid, Level.A2, ["b" * 64], "face")
    body = {"code": "roaming.set", "inputs": {"enabled": True}, "idempotency_key": "r1"}
    resp = await app_client.post(f"/api/counter/sessions/{sid}/transactions", json=body, headers=agent)
    assert resp.status == 202
    tid = (await resp.json())["id"]
    assert (await app_client.get("/api/customer/counter")).status == 401
    customer = {"X-Customer-Token": token}
    state = await (await phone.get("/api/customer/counter", headers=customer)).json()
    assert [p["id"] for p in state["pending"]] == [tid]
    resp = await phone.post(
        f"/api/customer/counter/transactions/{tid}/confirm", json={"accept": True}, headers=customer
    )
    assert (await resp.json())["status"] == "done"
    # Another agent cannot read this session's account.
    other = await login(app_client, "agent2", "agent2-demo")
    assert (await app_client.get(f"/api/counter/sessions/{sid}/account")).status == 403
    del other
    # A4: approved by the supervisor.
    agent = await login(app_client, "agent1", "agent1-demo")
    await sessions.raise_level(sid, Level.A3, ["c" * 64], "idcard")
    body = {"code": "sim.replace", "inputs": {"esim": True}, "idempotency_key": "s1"}
    tid = (await (await app_client.post(f"/api/counter/sessions/{sid}/transactions", json=body, headers=agent)).json())[
        "id"
    ]
    await phone.post(f"/api/customer/counter/transactions/{tid}/confirm", json={"accept": True}, headers=customer)
    assert (await app_client.post(f"/api/counter/approvals/{tid}", headers=agent)).status == 403
    sup = await login(app_client, "super1", "super1-demo")
    resp = await app_client.post(f"/api/counter/approvals/{tid}", headers=sup)
    assert (await resp.json())["status"] == "done"
    spec = await (await app_client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.1") and "/api/counter/sessions/{sid}/transactions" in spec["paths"]
    assert "Tx_puk_query" in spec["components"]["schemas"]


async def test_a1_by_sms_code_over_http(app_client: TestClient[Any, Any]) -> None:
    agent = await login(app_client, "agent1", "agent1-demo")
    sid = "call-api-sms"
    assert (await app_client.post("/api/counter/sessions", json={"call_id": sid}, headers=agent)).status == 201
    resp = await app_client.post(f"/api/counter/sessions/{sid}/sms-code", headers=agent)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "no_account"
    await app_client.post(f"/api/counter/sessions/{sid}/claim", json={"msisdn": "13800138000"}, headers=agent)
    resp = await app_client.post(f"/api/counter/sessions/{sid}/sms-code", headers=agent)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["sent_to"] == "138****8000"
    body = await app_client.app[DB].fetchval(
        "SELECT body FROM sms_outbox WHERE msisdn = '13800138000' ORDER BY id DESC LIMIT 1"
    )
    code = re.search(r"(\d{6})", str(body)).group(1)  # type: ignore[union-attr]
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
