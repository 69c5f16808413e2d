"""The whole journey in real browsers: a senior customer on a phone (390x844) and the care-lane agent
on the desktop console, then the auditor.  The customer is the holder of the demo line 13900139000
(奥巴马): the real-name photo on file is obama.jpg, the customer's camera shows obama1.jpg, the ID
card's portrait is cropped from obama2.jpg (three different photos of the same person).

Everything identity is real, through the identity API: the face check (witness frame against the
real-name photo), the liveness challenge (random sequence, frames taken by the witness from the live
video, A2) and the ID card (OCR, check digit, number = account holder's, portrait = live face, A3).

The customer's camera is a canvas (``canvas.captureStream``) that performs, in the page itself, the
action the customer page is prompting (``body[data-live-action]``): frames of the holder turning and
nodding (:func:`tests.identity.synth.turn`) and blinking (:func:`tests.identity.synth.close_eyes`),
rendered by the test, with the pose readings the identity engine takes of them printed on failure.
The refusal test's camera is the still photo clip: there the same liveness challenge is refused.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from counter.appkeys import ACCOUNTS, SESSIONS
from counter.audit import AUDIT
from counter.sessions import Level
from tests.browser.harness import BrowserEnv, spoken
from tests.browser.identity_checks import (
    MATCHING_LINE,
    face_check,
    identity_api_installed,
    liveness,
    reactive_customer,
    to_a3,
)
from tests.browser.staff import StaffWire, accept_care_call, claim, hang_up, puk_picker, shot, staff_page

OTHER_LINE = "13800138000"  # 妮可·基德曼: not the person in the refusal test's camera (sarah_2)


def test_journey_senior_customer_puk_rating_and_auditor(env: BrowserEnv, tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        assert env.app is not None
        out: dict[str, Any] = {"identity_api": identity_api_installed(env)}
        customer, out["readings"] = await reactive_customer(env)
        out["requests"] = []
        customer.on("response", lambda r: out["requests"].append(f"{r.request.method} {r.url} {r.status}"))
        wire = StaffWire()  # what the agent's, the supervisor's and the auditor's pages receive
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent", wire)
        call_id = await accept_care_call(env, customer, agent)
        out["call_id"] = call_id
        await agent.keyboard.press("Alt+C")
        await agent.keyboard.type("您好，我们先核对一下身份。")
        await agent.keyboard.press("Enter")
        await customer.wait_for_selector("#notice:not([hidden])")
        out["chat"] = await customer.text_content("#notice")
        await claim(agent, MATCHING_LINE)
        out["before"] = await puk_picker(env, agent, call_id)
        out.update(await to_a3(env, customer, agent, call_id, MATCHING_LINE, tmp_path))
        out["after"] = await puk_picker(env, agent, call_id)
        await agent.click("#tx-list li[data-code='puk.query']")
        await agent.click("#btn-tx-run")
        # The customer confirms on their own screen the server's words; only then is the PUK looked
        # up, and it reaches their screen alone: shown large and spoken digit by digit.
        await customer.wait_for_selector("[data-screen=confirm]")
        out["confirm_text"] = await customer.text_content("#screen")
        await customer.tap("#btn-confirm")
        await customer.wait_for_selector("[data-screen=tx-result] .secret-code")
        out["customer_sees"] = await customer.text_content("#screen")
        out["customer_digits"] = await customer.eval_on_selector_all(
            "[data-secret=puk] .digit", "els => els.map((e) => e.textContent).join('')")
        out["customer_spoken"] = await spoken(customer)
        await customer.tap("#btn-result-done")
        await agent.wait_for_selector("#tx-history tr[data-code='puk.query'][data-status=done]")
        out["agent_row"] = await agent.text_content("#tx-history tr[data-code='puk.query']")
        await agent.wait_for_selector("body[data-level=A3]")
        await shot(agent, "agent-console")
        acct = await env.app[ACCOUNTS].get(MATCHING_LINE)
        assert acct is not None and acct.sim is not None
        out["puk"] = acct.sim.puk
        # The supervisor sees the call in progress and listens in silently (the customer is not told).
        sup = await staff_page(env, "super1", "super1-demo", "/supervisor", wire)
        await sup.click(f"#calls tr[data-call='{call_id}'] .listen-btn")
        await sup.wait_for_selector(f"body[data-listening='{call_id}'][data-listen-video]")
        await shot(sup, "supervisor-wall")
        await sup.click("#btn-leave")
        # Hang up (shortcut), the customer rates, the agent wraps up.
        await hang_up(agent, customer)
        await customer.tap("#rate-5")
        await customer.wait_for_selector("[data-screen=result]")
        out["taps"] = await customer.evaluate("window.__taps")
        await agent.select_option("#wrapup-code", "resolved")
        await agent.fill("#wrapup-notes", "PUK given after face + ID")
        await agent.click("#btn-close")
        await agent.wait_for_selector("body[data-call='']")
        session = await env.app[SESSIONS].get(call_id)
        out["rating"], out["wrap_up"] = session.rating, session.wrap_up
        # The supervisor wall sees the day's numbers.
        await sup.reload()
        await sup.wait_for_selector("body[data-ready='1'] [data-kpi=csat] svg", state="attached")
        out["csat"] = await sup.text_content("[data-kpi=csat] .value")
        out["fcr"] = await sup.text_content("[data-kpi=fcr] .value")
        # Other tests share this server, so the day's numbers are compared with the API's, which
        # must count this call's 5 and its first-contact resolution.
        out["kpis"] = await (await sup.request.get(urljoin(sup.url, "/api/consoles/kpis"))).json()
        # The auditor finds the session, sees every step in order, opens personal data, verifies the log.
        aud = await staff_page(env, "audit1", "audit1-demo", "/auditor", wire)
        await aud.fill("#q-session", call_id)
        await aud.click("#btn-search")
        await aud.click("#results a.session-link")
        await aud.wait_for_selector(f"body[data-timeline='{call_id}'] #timeline li")
        out["timeline"] = await aud.eval_on_selector_all("#timeline li", "els => els.map(e => e.dataset.action)")
        out["recording"] = None
        if any(r.resource is not None and r.resource.canonical == "/api/recordings" for r in env.app.router.routes()):
            box = await aud.wait_for_selector("#recording [data-recording][data-intact]")
            out["recording"] = await box.get_attribute("data-intact")
            await aud.click("#recording .play-btn")
            await aud.wait_for_selector("#recording video.player")
        await aud.click("#btn-verify")
        await aud.wait_for_selector("body[data-verified]")
        out["verified"] = await aud.evaluate("document.body.dataset.verified")
        out["verify_text"] = await aud.text_content("#verify-state")
        await aud.wait_for_function("() => document.getElementById('views').textContent.includes('auditor.verify')")
        out["views"] = await aud.text_content("#views")
        await shot(aud, "auditor-console")
        found = await env.app[AUDIT].search(session_id=call_id, action="identity")
        out["identity_audit"] = [e["entry"] for e in found]
        await wire.settled()
        out["staff_received"] = (len(wire.bodies), len(wire.frames))
        out["staff_with_puk"] = wire.containing(out["puk"])
        out["staff_saw_shown"] = wire.containing("shown_to_customer")
        for page in (customer, agent, sup, aud):
            await env.close_page(page)
        return out

    r = env.run(scenario(), timeout=240)
    print(f"customer taps (face path, join to result): {len(r['taps'])}: {r['taps']}")
    print("identity:", {k: r[k] for k in ("identity_api", "face", "liveness", "id", "recording", "readings")})
    assert r["identity_api"], "web/identity_api.py is not wired: the identity steps cannot run"
    assert 0 < len(r["taps"]) <= 8, r["taps"]
    assert "核对一下身份" in r["chat"], r["chat"]
    assert r["before"]["enabled"] == "false" and "A3" in r["before"]["text"], r["before"]
    assert r["face"]["decision"] == "match", r["face"]
    assert r["liveness"]["api_ok"] and r["level_after_liveness"] == Level.A2, (r["liveness"], r["readings"])
    assert r["id"]["ok"] and r["level_after_id"] == Level.A3, r["id"]
    assert r["after"]["enabled"] == "true", r["after"]
    assert "查询PUK码" in r["confirm_text"] and "只显示在您的屏幕上" in r["confirm_text"], r["confirm_text"]
    grouped = f"{r['puk'][:4]} {r['puk'][4:]}"
    assert r["customer_digits"] == r["puk"] and grouped in r["customer_sees"], (r["puk"], r["customer_sees"])
    digits = [s for s in r["customer_spoken"] if len(s) == 1 and s.isdigit()]
    assert "".join(digits) == r["puk"], r["customer_spoken"]  # the speech queue: one digit an utterance
    assert not any(r["puk"][:4] in s for s in r["customer_spoken"]), "spoken digit by digit, never as one number"
    assert r["puk"] not in r["agent_row"] and "显示在客户屏幕" in r["agent_row"], r["agent_row"]
    # Not hidden by the console's display code: the PUK never reached a staff page at all.
    assert r["staff_received"][0] > 20 and r["staff_received"][1] > 5, r["staff_received"]
    assert r["staff_with_puk"] == [], r["staff_with_puk"]
    assert r["staff_saw_shown"], "staff were told the PUK was shown to the customer"
    assert (r["rating"], r["wrap_up"]) == (5, "resolved"), [x for x in r["requests"] if "/api/" in x]
    kpis = r["kpis"]
    assert kpis["rating_counts"][4] >= 1 and kpis["first_contact_resolution"] > 0, kpis
    assert r["csat"] == f"{kpis['satisfaction']:g} / 5", (r["csat"], kpis)
    assert r["fcr"] == f"{math.floor(kpis['first_contact_resolution'] * 1000 + 0.5) / 10:g}%", (r["fcr"], kpis)
    steps = r["timeline"]
    order = ["call.joined", "call.accepted", "identity.face_check", "identity.liveness", "identity.id_capture",
             "transaction.puk.query", "call.ended"]
    positions = [steps.index(s) for s in order]
    assert positions == sorted(positions), steps
    for kept in ("session.consent", "session.level.A2", "session.level.A3", "session.rating", "session.closed"):
        assert kept in steps, (kept, steps)
    assert r["verified"] == "ok", r["verify_text"]
    lives = [e for e in r["identity_audit"] if e["action"] == "identity.liveness"]
    assert [e["outcome"] for e in lives] == ["ok"] and lives[0]["evidence"], (lives, r["readings"])
    assert "stand_in" not in str(lives[0]["details"]) and lives[0]["actor_role"] == "agent", lives
    assert lives[0]["details"]["challenge"] == r["liveness"]["performed"], (lives, r["liveness"])
    performer = lives[0]["details"]["identity"]  # the movements were the holder's: matched with the photo on file
    assert performer["compared"] >= 1 and performer["min_score"] >= performer["threshold"], lives
    assert len(lives[0]["evidence"]) == 2, lives  # the first frame, and the frame matched with the photo
    cards = [e for e in r["identity_audit"] if e["action"] == "identity.id_capture"]
    assert [e["outcome"] for e in cards] == ["ok"], cards
    assert cards[0]["evidence"] and "stand_in" not in str(cards[0]["details"]), cards
    assert cards[0]["details"]["number_matches"] and cards[0]["details"]["portrait"]["decision"] == "match", cards
    assert r["recording"] in (None, "true"), "the recording's segments must match the audit log"
    assert "auditor.view_session" in r["views"] and "auditor.verify" in r["views"], r["views"]


def test_refusal_another_persons_face_keeps_puk_refused(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        assert env.app is not None
        out: dict[str, Any] = {}
        customer = await env.new_page()
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        call_id = await accept_care_call(env, customer, agent)
        await claim(agent, OTHER_LINE)
        out["face"] = await face_check(env, customer, agent, call_id, OTHER_LINE)
        await customer.wait_for_selector("[data-screen=call]")
        # The camera here is the still photo clip: the real liveness challenge refuses it.
        out["liveness"] = await liveness(env, customer, agent, call_id)
        await customer.wait_for_selector("[data-screen=call]")
        out["picker"] = await puk_picker(env, agent, call_id)
        out["level"] = str((await env.app[SESSIONS].get(call_id)).level)
        # Asked directly, the server refuses too (the page hiding it is not the protection).
        out["direct"] = await agent.evaluate(
            """async (sid) => { const r = await fetch(`/api/counter/sessions/${sid}/transactions`, {method: 'POST',
               headers: {'Content-Type': 'application/json', 'X-CSRF-Token': sessionStorage.getItem('rc.csrf')},
               body: JSON.stringify({code: 'puk.query', inputs: {}, idempotency_key: 'direct-1'})});
               return {status: r.status, body: await r.json()}; }""",
            call_id,
        )
        await hang_up(agent, customer)
        await env.close_page(customer)
        await env.close_page(agent)
        return out

    r = env.run(scenario(), timeout=180)
    assert r["face"]["decision"] == "no_match", r["face"]
    assert not r["liveness"]["api_ok"], ("a still photo must not pass the liveness challenge", r["liveness"])
    assert r["level"] == "A0"
    assert r["picker"]["enabled"] == "false" and "A3" in r["picker"]["text"], r["picker"]
    direct = r["direct"]
    assert direct["body"]["status"] == "refused" and "needs A3" in direct["body"]["reason"], direct
    assert "PUK" not in str(direct["body"].get("text_zh")), direct
