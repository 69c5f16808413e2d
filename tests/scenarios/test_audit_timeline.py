"""The auditor's session timeline from the audit log alone: the claimed account, chat lines, the
customer's rating and the wrap-up code are audit entries, in the order they happened, over real
sockets; the chat words are purgeable personal data and the log verifies after they are purged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from counter.appkeys import DB
from counter.audit import AUDIT
from counter.audit.verify import verify_database
from signaling import protocol as p
from signaling.client import SignalingClient
from storage.timeutil import utcnow

LINE = "13800138000"  # claimed on the customer's screen at join
CORRECTED = "13900139000"  # the line the customer names to the agent
WORDS = ("您好，我想查一下PUK码", "好的，请先说一下服务密码", "身份证号110101199003071234")


async def test_chat_claim_rating_and_wrap_up_are_audited_in_order(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff, \
            aiohttp.ClientSession() as phone:
        customer = await SignalingClient.customer(phone, base)
        agent = await SignalingClient.staff(staff, base, "agent1", "agent1-demo")
        try:
            await customer.send(p.Join(claimed_phone=LINE))
            await agent.send(p.Presence(state="available"))
            offer = await agent.expect(p.CallOffer)
            sid = offer.call_id
            await agent.send(p.Accept(call_id=sid))
            await customer.expect(p.CallStarted, call_id=sid)
            async with staff.get(f"{base}/api/auth/me") as resp:
                csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}

            async def agent_post(path: str, body: dict[str, Any]) -> None:
                async with staff.post(f"{base}/api/counter/sessions/{sid}{path}", json=body, headers=csrf) as r:
                    assert r.status == 200, await r.text()

            await agent_post("/claim", {"msisdn": CORRECTED, "claimed_name": "王秀英"})
            await customer.send(p.Chat(call_id=sid, text=WORDS[0]))
            assert (await agent.expect(p.Chat)).text == WORDS[0]
            await agent.send(p.Chat(call_id=sid, text=WORDS[1]))
            assert (await customer.expect(p.Chat)).text == WORDS[1]
            await customer.send(p.Chat(call_id=sid, text=WORDS[2]))
            assert (await agent.expect(p.Chat)).text == WORDS[2]
            async with phone.post(f"{base}/api/customer/counter/rating", json={"rating": 4, "comment": "很耐心"},
                                  headers={"X-Customer-Token": customer.token or ""}) as r:
                assert r.status == 200, await r.text()
            await agent_post("/close", {"wrap_up": "resolved"})
        finally:
            await customer.close()
            await agent.close()

    audit = app_client.app[AUDIT]
    entries = [e for e in await audit.search(session_id=sid) if not e["entry"]["action"].startswith("call.")
               or e["entry"]["action"] == "call.chat"]
    timeline = [(e["entry"]["action"], e["entry"]["actor_role"]) for e in entries]
    assert timeline == [
        ("session.claim", "agent"), ("call.chat", "customer"), ("call.chat", "agent"), ("call.chat", "customer"),
        ("session.rating", "customer"), ("session.wrap_up", "agent"),
    ], timeline
    by_action = {e["entry"]["action"]: e for e in entries}
    chats = [e for e in entries if e["entry"]["action"] == "call.chat"]
    assert [c["entry"]["details"] for c in chats] == [
        {"sender_role": r, "length": len(w)} for r, w in zip(("customer", "agent", "customer"), WORDS, strict=True)
    ]
    assert [c["entry"]["actor_id"] for c in chats] == [f"session:{sid}", "agent1", f"session:{sid}"]
    assert all(c["personal_stored"] for c in chats)
    assert [(await audit.personal(c["seq"]))["text"] for c in chats] == list(WORDS)  # type: ignore[index]
    claim = by_action["session.claim"]["entry"]
    assert claim["account"] == audit.account_pseudonym(CORRECTED) and claim["details"]["changed"] is True
    assert {c["entry"]["account"] for c in chats} == {audit.account_pseudonym(LINE)}
    assert (await audit.personal(by_action["session.claim"]["seq"])) == {"claimed_name": "王秀英"}
    assert by_action["session.rating"]["entry"]["details"] == {"rating": 4, "comment_length": 3}
    assert by_action["session.wrap_up"]["entry"]["details"]["wrap_up"] == "resolved"
    stored = str([e["entry"] for e in entries])
    assert not any(w in stored for w in WORDS) and "王秀英" not in stored and "很耐心" not in stored

    assert await audit.purge_personal(utcnow() + timedelta(seconds=1)) >= len(chats)
    for c in chats:
        assert await audit.personal(c["seq"]) is None
    after = [e for e in await audit.search(session_id=sid, action="call.chat")]
    assert [e["leaf_hash"] for e in after] == [c["leaf_hash"] for c in chats]
    report = await verify_database(app_client.app[DB], audit.signer.public_key)
    assert report.ok and not report.problems, report.problems
