"""The customer confirms what the server says, and secrets reach only the customer (issue 15).

Over real calls (:func:`tests.calls.live_call`): an agent's push_step cannot put words on the
customer's confirmation screen, and a PUK is in the customer's own answers only.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from counter.appkeys import ACCOUNTS, SESSIONS
from counter.levels import Method
from counter.proofs import ProofKind
from counter.sessions import Level
from signaling import protocol as p
from tests.calls import LiveCall, live_call
from tests.conftest import login
from tests.counter.txkit import raise_on_proofs

MISLEADING = {"title_zh": "余额查询", "what_zh": "为您查询话费余额", "effect_zh": "只是查询，不做任何更改"}


async def _at_a2(call: LiveCall, sessions: Any) -> str:
    """The call's session at A2: the line's service password (A1), face consent, face and liveness proofs."""
    sid = call.call_id
    await call.staff("POST", f"/api/counter/sessions/{sid}/verify-password", json={"password": "246810"})
    await sessions.set_face_consent(sid, True)
    await raise_on_proofs(sessions, sid, Level.A2, Method.FACE, ProofKind.FACE_MATCH, ProofKind.LIVENESS)
    return sid


async def test_an_agents_words_never_reach_the_confirmation_screen(app_client: TestClient[Any, Any]) -> None:
    sessions = app_client.app[SESSIONS]
    async with live_call(str(app_client.make_url("")), claimed_phone="13800138000") as call:
        sid = await _at_a2(call, sessions)
        status, tx = await call.staff(
            "POST",
            f"/api/counter/sessions/{sid}/transactions",
            json={"code": "forwarding.set", "inputs": {"target": "13912345678"}, "idempotency_key": "f1"},
        )
        assert status == 202 and tx["status"] == "pending", tx
        # An insider's console says "balance" while the request is call forwarding: refused by the server.
        await call.agent.send({"type": "push_step", "call_id": sid, "step_id": "lie", "step": "confirm",
                               "params": {"transaction_id": tx["id"], **MISLEADING}})
        refused = await call.agent.expect(p.ErrorMsg)
        assert refused.code == "invalid" and "transaction_id" in refused.reason, refused
        await call.agent.send(p.PushStep(call_id=sid, step_id="ok", step="confirm",
                                         params={"transaction_id": tx["id"]}))
        pushed = await call.customer.expect(p.PushStep)
        assert (pushed.step_id, pushed.params) == ("ok", {"transaction_id": tx["id"]}), pushed
        # The customer's page words the screen from the customer's own API: the server's words only.
        status, mine = await call.phone("GET", "/api/customer/counter")
        assert status == 200 and [t["id"] for t in mine["pending"]] == [tx["id"]]
        words = mine["pending"][0]["confirm"]
        assert words["title_zh"] == "呼叫转移" and words["title_en"] == "Call forwarding", words
        assert "13912345678" in words["what_zh"] and "13912345678" in words["what_en"], words
        assert "转移" in words["effect_zh"] and "forwarded" in words["effect_en"], words
        assert {"field": "target", "label_zh": "来电转移到", "label_en": "forward calls to",
                "value_zh": "13912345678", "value_en": "13912345678"} in words["inputs"]
        shown = json.dumps(mine, ensure_ascii=False)
        assert not [w for w in MISLEADING.values() if w in shown], shown


async def test_the_puk_is_in_the_customers_answers_only(app_client: TestClient[Any, Any]) -> None:
    sessions = app_client.app[SESSIONS]
    async with live_call(str(app_client.make_url("")), claimed_phone="13800138000") as call:
        sid = await _at_a2(call, sessions)
        await raise_on_proofs(sessions, sid, Level.A3, Method.IDCARD, ProofKind.ID_CARD, ProofKind.FACE_MATCH)
        account = await app_client.app[ACCOUNTS].get("13800138000")
        assert account is not None and account.sim is not None
        old_puk = account.sim.puk
        staff_saw: list[Any] = []

        async def staff(method: str, path: str, **kw: Any) -> Any:
            _, body = await call.staff(method, path, **kw)
            staff_saw.append(body)
            return body

        url = f"/api/counter/sessions/{sid}/transactions"
        asked = await staff("POST", url, json={"code": "puk.query", "inputs": {}, "idempotency_key": "p1"})
        status, done = await call.phone(
            "POST", f"/api/customer/counter/transactions/{asked['id']}/confirm", json={"accept": True}
        )
        assert status == 200 and done["status"] == "done" and done["secrets"] == [
            {"name": "puk", "label_zh": "PUK码", "label_en": "PUK code", "value": old_puk}
        ], done
        assert old_puk in done["text_zh"] and old_puk in done["text_en"]
        session = await staff("GET", f"/api/counter/sessions/{sid}")
        puk_row = session["transactions"][0]
        assert puk_row["status"] == "done" and puk_row["shown_to_customer"] == ["puk"], puk_row
        assert "显示在客户屏幕" in puk_row["text_zh"] and "shown to the customer" in puk_row["text_en"]
        # A new SIM: the customer confirms, a supervisor approves; the new PUK and ICCID are the customer's.
        replace = await staff("POST", url, json={"code": "sim.replace", "inputs": {}, "idempotency_key": "s1"})
        await call.phone("POST", f"/api/customer/counter/transactions/{replace['id']}/confirm", json={"accept": True})
        sup = await login(app_client, "super1", "super1-demo")
        for resp in (
            await app_client.get("/api/counter/approvals"),
            await app_client.post(f"/api/counter/approvals/{replace['id']}", headers=sup),
        ):
            staff_saw.append(await resp.json())
        assert staff_saw[-1]["status"] == "done", staff_saw[-1]
        staff_saw.append(await staff("GET", f"/api/counter/sessions/{sid}"))
        staff_saw.append(await staff("GET", f"/api/counter/sessions/{sid}/account"))
        account = await app_client.app[ACCOUNTS].get("13800138000")
        assert account is not None and account.sim is not None
        _, mine = await call.phone("GET", "/api/customer/counter")
        new = {s["name"]: s["value"] for s in mine["recent"][-1]["secrets"]}
        assert new == {"iccid": account.sim.iccid, "puk": account.sim.puk}, mine["recent"][-1]
        seen = json.dumps(staff_saw, ensure_ascii=False)
        for secret in (old_puk, account.sim.puk, account.sim.iccid):
            assert secret not in seen, (secret, seen)
