"""The auditor console's session timeline in Chromium: consent, the claimed account, chat lines, the
rating and the wrap-up appear as audited steps, in order, each once; a chat line's words only on
request (the view itself audited); opening it moves focus to it and a live region says so."""

from __future__ import annotations

from typing import Any

from counter.appkeys import SESSIONS
from counter.audit import AUDIT, AuditEvent
from tests.browser.harness import BrowserEnv
from tests.browser.staff import staff_page

SID = "timeline-ui-1"
LINE = "13600136000"
WORDS = "我的服务密码是246810"
STEPS = [
    AuditEvent("call.joined", "customer", f"session:{SID}", session_id=SID, details={"lane": "care"}),
    AuditEvent("consent.face", "customer", f"session:{SID}", session_id=SID,
               details={"accepted": True, "source": "customer_screen"}),
    AuditEvent("session.claim", "agent", "agent2", session_id=SID, account=LINE,
               details={"changed": True, "level_before": "A0", "level": "A0"}, personal={"claimed_name": "李四"}),
    AuditEvent("call.chat", "customer", f"session:{SID}", session_id=SID, account=LINE,
               details={"sender_role": "customer", "length": len(WORDS)}, personal={"text": WORDS}),
    AuditEvent("call.chat", "agent", "agent2", session_id=SID, account=LINE,
               details={"sender_role": "agent", "length": 4}, personal={"text": "谢谢您"}),
    AuditEvent("session.rating", "customer", f"session:{SID}", session_id=SID, account=LINE,
               details={"rating": 5, "comment_length": 0}),
    AuditEvent("session.wrap_up", "agent", "agent2", session_id=SID, account=LINE, details={"wrap_up": "resolved"}),
]


def test_timeline_shows_chat_claim_rating_wrap_up_in_order(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        assert env.app is not None
        out: dict[str, Any] = {}
        sessions = env.app[SESSIONS]
        await sessions.open(SID, "agent2")
        await sessions.claim_account(SID, LINE, "李四")
        seqs = [(await env.app[AUDIT].append(step)).seq for step in STEPS]
        await sessions.rate(SID, 5)
        await sessions.close(SID, "resolved")
        out["chat_seq"] = seqs[3]
        aud = await staff_page(env, "audit1", "audit1-demo", "/auditor")
        await aud.goto(f"{env.base_url}/auditor#session={SID}")
        await aud.wait_for_selector(f"body[data-timeline='{SID}'] #timeline li[data-seq='{seqs[-1]}']")
        # opening it moves focus to the timeline and a live region says so
        await aud.wait_for_function("() => document.getElementById('timeline-announce').textContent !== ''")
        out["focus"] = await aud.evaluate("""() => ({
            focused: document.activeElement.id,
            inTimeline: document.getElementById('timeline-panel').contains(document.activeElement),
            live: [...document.querySelectorAll('#timeline-panel [aria-live]')].map((e) => e.textContent)})""")
        out["steps"] = await aud.eval_on_selector_all("#timeline li", "els => els.map(e => e.dataset.action)")
        out["kinds"] = await aud.eval_on_selector_all(
            "#timeline li[data-seq]", "els => els.map(e => [e.dataset.action, e.classList[0]])")
        chat = f"#timeline li[data-seq='{seqs[3]}']"
        out["chat_before"] = await aud.text_content(chat)
        await aud.click(f"{chat} .personal-btn")
        await aud.wait_for_selector(f"{chat} pre.personal")
        out["chat_after"] = await aud.text_content(chat)
        out["views"] = await aud.text_content("#views")
        await aud.context.close()
        env.contexts.remove(aud.context)
        return out

    r = env.run(scenario())
    audited = [s.action for s in STEPS]
    shown = [s for s in r["steps"] if s in audited]
    assert shown == audited, r["steps"]
    focus = r["focus"]
    assert focus["focused"] == "h-timeline" and focus["inTimeline"], focus
    [said] = focus["live"]
    assert SID in said and "时间线" in said and "Timeline" in said and f"{len(r['steps'])} steps" in said, said
    assert r["steps"].count("session.rating") == 1, "the audited rating replaces the record's copy"
    assert dict(r["kinds"])["consent.face"] == "consent"
    assert "聊天 chat" in r["chat_before"] and WORDS not in r["chat_before"]
    assert WORDS in r["chat_after"]
    assert "auditor.view_record" in r["views"], r["views"]
