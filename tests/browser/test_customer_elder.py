"""The elderly customer's journey (issue #17), measured in Chromium at 390x844 in zh-CN senior mode.

One journey is played once for the module (a chat line, a step, the service password on the
keypad, a failed liveness check, a PUK, the end of the call) and what the customer saw and heard is
recorded; each test below checks one promise of it.  Every text shown or spoken is recorded as it
appears (a MutationObserver in the page) for the language check.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import aiohttp
import pytest

from counter.appkeys import SESSIONS
from counter.audit import AUDIT
from counter.proofs import ProofKind
from counter.sessions import Level
from signaling import protocol as p
from signaling.aio import SIGNALING
from signaling.client import ClientError
from tests.browser.harness import Agent, BrowserEnv, keypad, queued, screenshot, send_password, spoken, to_queue
from tests.browser.staff import StaffWire, accept_care_call, answer, claim, hang_up, staff_page
from tests.counter.txkit import raise_on_proofs

LINE = "13800138000"
PASSWORD = "246810"  # the demo line's service password
#: Latin letters a zh-CN screen may show: the names of codes printed on the SIM card itself.
CODE_NAMES = {"PUK", "SIM", "ICCID"}

#: Records every text the customer's screen shows (screen, banner, title bar), as it changes.
RECORD_TEXTS = """
() => {
  window.__shown = [];
  const grab = () => {
    const parts = ["#app-title", "#btn-repeat", "#screen", "#notice"].map((s) => document.querySelector(s))
      .filter((el) => el && !el.hidden).map((el) => el.innerText.trim()).filter(Boolean);
    const text = parts.join(" | ");
    if (window.__shown[window.__shown.length - 1] !== text) window.__shown.push(text);
  };
  grab();
  new MutationObserver(grab).observe(document.body,
    { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["hidden"] });
}
"""

#: Every control and field of the current screen: is it wholly inside the viewport?
IN_VIEW = """
() => [...document.querySelectorAll("#screen button, #screen input")].map((el) => {
  const r = el.getBoundingClientRect();
  return { id: el.id || el.dataset.key || el.className, top: r.top, bottom: r.bottom, left: r.left, right: r.right,
           inside: r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth };
})
"""


#: Counts the tones the console starts (Web Audio oscillators).
COUNT_TONES = """
() => {
  window.__tones = 0;
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) { window.__tones += 1; return start.apply(this, args); };
}
"""


#: Does the page fit its width (no sideways scrolling), and is the title on one line?
FITS = """
() => {
  const title = document.getElementById("app-title").getBoundingClientRect();
  const size = parseFloat(getComputedStyle(document.getElementById("app-title")).fontSize);
  return { screen: document.body.dataset.screen, width: innerWidth, scroll: document.documentElement.scrollWidth,
           // null: the title gives its place to a tool (family helper's invite button, on a phone)
           titleLines: getComputedStyle(document.getElementById("app-title")).display === "none" ? null
             : Math.round(title.height / (size * 1.5)), titleWidth: Math.round(title.width) };
}
"""


async def reflow(page: Any, out: dict[str, Any]) -> None:
    """The current screen at 320 px wide and at 200 % zoom (195 CSS px on this phone), then back;
    and what still moves under prefers-reduced-motion."""
    for width in (320, 195):
        await page.set_viewport_size({"width": width, "height": 844 * width // 390})
        out.setdefault("reflow", []).append(await page.evaluate(FITS))
    await page.set_viewport_size({"width": 390, "height": 844})
    moving = await page.evaluate("document.getAnimations().map((a) => a.animationName ?? 'transition')")
    out.setdefault("moving", {})[await page.evaluate("document.body.dataset.screen")] = moving


async def _stage(out: dict[str, Any], name: str, coro: Any) -> None:
    """Run one stage; a failure is recorded under its name (so each test reports its own stage)."""
    try:
        await coro
    except Exception as exc:  # the journey goes on: later promises are checked all the same
        out.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"


def _stage_ok(r: dict[str, Any], *names: str) -> None:
    errors = {k: v for k, v in r.get("errors", {}).items() if k in names}
    assert not errors, errors


@pytest.fixture(scope="module")
def journey(env: BrowserEnv) -> dict[str, Any]:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        page = await env.new_page()
        await page.emulate_media(reduced_motion="reduce")
        await page.evaluate(RECORD_TEXTS)
        await page.tap("#btn-senior")
        await page.wait_for_selector("[data-screen=consent]")
        await reflow(page, out)
        await page.tap("#btn-consent")
        await page.tap("#btn-face-yes")
        call_id = await queued(page)
        await reflow(page, out)
        async with Agent.online(env.base_url) as agent:
            await agent.take(page, call_id)
            out["call_boxes"] = await page.evaluate(IN_VIEW)
            await reflow(page, out)
            sid = f"/api/counter/sessions/{call_id}"

            async def banner() -> None:
                await agent.client.send(p.Chat(call_id=call_id, text="请准备好您的服务密码"))
                await page.wait_for_selector("#notice:not([hidden])")
                out["banner_before"] = await page.text_content("#notice")
                await agent.push("info", "i1", text="请把手机放稳，看着屏幕", press="不用按任何键")
                await page.wait_for_selector("[data-screen=step]")
                out["banner_on_step"] = await page.evaluate("!document.getElementById('notice').hidden")
                await reflow(page, out)
                await page.tap("#btn-step-done")
                await agent.step_result("i1")
                await page.wait_for_selector("[data-screen=call]")

            async def keypad() -> None:
                await agent.api(f"{sid}/claim", {"msisdn": LINE})
                await agent.api(f"{sid}/consent", {"face_consent": True})
                await page.tap("#btn-type")
                await page.wait_for_selector("[data-screen=keypad]")
                out["keypad_boxes"] = await page.evaluate(IN_VIEW)
                await reflow(page, out)
                for key in PASSWORD:
                    await page.tap(f".key[data-key='{key}']")
                out["keypad_field"] = await page.evaluate(
                    "(() => { const f = document.querySelector('#screen input'); return [f.type, f.value.length]; })()")
                out["keypad_text"] = await page.inner_text("body")
                out["password"] = await send_password(page)
                out["level_after_password"] = str((await env.app[SESSIONS].get(call_id)).level)
                await page.tap("#btn-chat-close")
                await page.wait_for_selector("[data-screen=call]")

            async def liveness() -> None:
                challenge = (await agent.api(f"{sid}/identity/liveness", {}))["challenge"]
                await agent.push("liveness", "l1", sequence=challenge["sequence"], deadline=challenge["deadline"])
                await agent.step_result("l1", within=60)
                # the camera is a still photo of someone else: the real check refuses it
                out["liveness_api"] = await agent.api(f"{sid}/identity/liveness/{challenge['id']}", {})
                await page.wait_for_selector("[data-screen=liveness-failed]")
                out["liveness_screen"] = await page.inner_text("#screen")
                await screenshot(page, "senior-liveness-failed")
                out["liveness_spoken"] = (await spoken(page))[-3:]
                await page.tap("#btn-notice-ok")
                await page.wait_for_selector("[data-screen=call]")

            async def puk() -> None:
                # the identity checks themselves have their own tests: here their proofs are recorded
                await raise_on_proofs(env.app[SESSIONS], call_id, Level.A2, "face", ProofKind.FACE_MATCH,
                                      ProofKind.LIVENESS)
                await raise_on_proofs(env.app[SESSIONS], call_id, Level.A3, "idcard", ProofKind.FACE_MATCH,
                                      ProofKind.ID_CARD)
                tx = await agent.api(f"{sid}/transactions", {"code": "puk.query", "inputs": {},
                                                             "idempotency_key": f"puk-{call_id}"})
                await agent.push("confirm", "c1", transaction_id=tx["id"])
                await page.wait_for_selector("[data-screen=confirm]")
                before = len(await spoken(page))
                await page.tap("#btn-confirm")
                await page.wait_for_selector("[data-screen=tx-result] [data-secret=puk] .secret-code")
                out["puk_code"] = await page.text_content("[data-secret=puk] .secret-code")
                out["puk_px"] = await page.eval_on_selector(
                    "[data-secret=puk] .digit", "(el) => parseFloat(getComputedStyle(el).fontSize)")
                out["puk_copy"] = await page.query_selector("#btn-txres-copy") is not None
                await screenshot(page, "senior-puk")
                await reflow(page, out)
                out["puk_spoken"] = (await spoken(page))[before:]
                before = len(await spoken(page))
                await page.tap("#btn-txres-repeat")
                out["puk_again"] = (await spoken(page))[before:]
                await page.tap("#btn-result-done")

            for name, stage in (("banner", banner), ("keypad", keypad), ("liveness", liveness), ("puk", puk)):
                await _stage(out, name, stage())
            with contextlib.suppress(ClientError):
                while True:  # whatever is still unread: everything the agent's socket received counts
                    await agent.client.recv(0.3)
            out["agent_received"] = [m.model_dump_json() for m in agent.client.history]
            await agent.hangup()
            await page.wait_for_selector("[data-screen=rating]")
            await page.tap("#rate-5")
            await page.wait_for_selector("[data-screen=result]")
            out["results"] = await page.eval_on_selector_all(
                "#results li", "els => els.map((e) => [e.dataset.tx, e.innerText])")
            out["result_px"] = await page.eval_on_selector_all(
                "#results .digit", "els => els.map((e) => parseFloat(getComputedStyle(e).fontSize))")
            await reflow(page, out)
        out["shown"] = await page.evaluate("window.__shown")
        out["spoken"] = await spoken(page)
        await env.close_page(page)
        return out

    result: dict[str, Any] = env.run(scenario(), timeout=180)
    return result


def _latin(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z]+", text) if w not in CODE_NAMES]


def test_puk_large_grouped_spoken_digit_by_digit_with_repeat_and_copy(journey: dict[str, Any]) -> None:
    r = journey
    _stage_ok(r, "puk")
    puk = "".join(c for c in r["puk_code"] if c.isdigit())
    assert re.fullmatch(r"\d{4} \d{4}", r["puk_code"]), r["puk_code"]
    assert r["puk_px"] >= 40, r["puk_px"]
    assert r["puk_copy"], "a copy button"
    # the speech queue holds the digits one by one, after the label; and again on 再听一遍
    for said in (r["puk_spoken"], r["puk_again"]):
        digits = [s for s in said if len(s) == 1 and s.isdigit()]
        assert "".join(digits) == puk, said
        assert not any(puk[:4] in s for s in said), said


def test_one_result_entry_per_transaction_from_the_servers_record(journey: dict[str, Any]) -> None:
    r = journey
    ids = [tx for tx, _ in r["results"]]
    assert ids and len(ids) == len(set(ids)) and all(ids), r["results"]
    assert sum("PUK" in text for _, text in r["results"]) == 1, r["results"]
    assert r["result_px"] and min(r["result_px"]) >= 40, r["result_px"]
    end = [s for s in r["spoken"] if "谢谢您的评价" in s]
    assert end and all(s.count("PUK") <= 1 for s in end), end


def test_no_latin_letters_on_any_zh_screen_or_utterance(journey: dict[str, Any]) -> None:
    r = journey
    shown = {t: _latin(t) for t in r["shown"] if _latin(t)}
    said = {t: _latin(t) for t in r["spoken"] if _latin(t)}
    assert len(r["shown"]) > 10 and not shown, shown
    assert len(r["spoken"]) > 10 and not said, said


def test_password_keypad_in_view_masked_and_never_sent_to_the_agent(journey: dict[str, Any]) -> None:
    r = journey
    _stage_ok(r, "keypad")
    outside = [b for b in r["keypad_boxes"] + r["call_boxes"] if not b["inside"]]
    assert r["keypad_boxes"] and r["call_boxes"] and not outside, outside
    assert r["keypad_field"] == ["password", len(PASSWORD)], r["keypad_field"]
    assert PASSWORD not in r["keypad_text"]
    assert r["password"] == "ok" and r["level_after_password"] == "A1", (r["password"], r["level_after_password"])
    assert not [m for m in r["agent_received"] if PASSWORD in m]


def test_chat_banner_leaves_with_its_step(journey: dict[str, Any]) -> None:
    r = journey
    _stage_ok(r, "banner")
    assert "服务密码" in r["banner_before"]
    assert r["banner_on_step"] is False


def test_failed_liveness_is_explained_and_spoken(journey: dict[str, Any]) -> None:
    r = journey
    _stage_ok(r, "liveness")
    assert r["liveness_api"]["result"]["passed"] is False, r["liveness_api"]["result"]
    assert "没有通过" in r["liveness_screen"] and "营业员" in r["liveness_screen"], r["liveness_screen"]
    assert any("没有核对成功" in s for s in r["liveness_spoken"]), r["liveness_spoken"]


async def _lane_and_leave(env: BrowserEnv, page: Any, call_id: str, out: dict[str, Any]) -> dict[str, Any]:
    """``out`` with the call's lane and its care-by-age audit entries; then the customer leaves the queue."""
    call = await env.app[SIGNALING].bus.get_call(call_id)
    out["lane"] = call.lane if call is not None else None
    found = await env.app[AUDIT].search(session_id=call_id, action="call.care_by_age")
    out["audit"] = [e["entry"] for e in found]
    await page.tap("#btn-leave")
    await env.close_page(page)
    return out


def test_help_alerts_the_agent_console_and_the_password_never_reaches_it(env: BrowserEnv) -> None:
    """我不会，请帮我 on a pushed step: the real agent console shows an alert with the step and plays
    a tone; the customer hears that help is coming.  The service password the customer types on
    their keypad reaches nothing the console receives."""
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        customer = await env.new_page()
        wire = StaffWire()
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent", wire)
        await agent.evaluate(COUNT_TONES)
        await accept_care_call(env, customer, agent)
        await claim(agent, LINE)
        await keypad(customer, PASSWORD)
        out["password"] = await send_password(customer)
        await customer.tap("#btn-chat-close")
        await agent.wait_for_selector("#guide-script:not([disabled])")
        await agent.click("#btn-guide-start")
        await agent.wait_for_selector("#btn-guide-push:not([disabled])")
        out["step_pushed"] = await agent.eval_on_selector("#guide-step", "(s) => s.options[s.selectedIndex].text")
        await agent.click("#btn-guide-push")
        await customer.wait_for_selector("[data-screen=step]")
        await customer.tap("#btn-step-help")
        await customer.wait_for_selector("[data-screen=help-coming]")
        out["customer_heard"] = (await spoken(customer))[-1]
        await agent.wait_for_selector("#help-alert:not([hidden])")
        out["alert"] = await agent.text_content("#help-alert-text")
        out["tones"] = await agent.evaluate("window.__tones")
        out["agent_text"] = await agent.inner_text("body")
        await agent.click("#btn-help-ack")
        await wire.settled()
        out["wire_with_password"] = wire.containing(PASSWORD)
        out["wire"] = (len(wire.bodies), len(wire.frames))
        await hang_up(agent, customer)
        await env.close_page(customer)
        await env.close_page(agent)
        return out

    r = env.run(scenario(), timeout=120)
    print("help alert:", r["alert"], "| pushed:", r["step_pushed"], "| tones:", r["tones"])
    assert r["password"] == "ok", r["password"]
    assert "营业员马上来帮您" in r["customer_heard"], r["customer_heard"]
    assert "客户需要帮助" in r["alert"] and r["tones"] >= 1, (r["alert"], r["tones"])
    assert r["step_pushed"].split()[0][:4] in r["alert"] or "步骤" in r["alert"], (r["step_pushed"], r["alert"])
    assert r["wire"][1] > 5 and r["wire_with_password"] == [], r["wire_with_password"]
    assert PASSWORD not in r["agent_text"]


async def _voice_only(env: BrowserEnv) -> tuple[Any, str]:
    """A senior customer who refused the camera and chose 只用声音办理: the page and the queued call's id."""
    page = await env.new_page(deny_camera=True)
    await page.tap("#btn-senior")
    await page.tap("#btn-consent")
    await page.tap("#btn-face-yes")
    await page.wait_for_selector("[data-screen=denied]")
    await page.tap("#btn-voice-only")
    return page, await queued(page)


def test_camera_denied_customer_is_served_by_voice(env: BrowserEnv) -> None:
    """Camera refused: 只用声音办理 puts the customer in an audio call with an agent, who is told why;
    the identity path without a face (the service password on the keypad) still raises the level."""

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        page, call_id = await _voice_only(env)
        async with Agent.online(env.base_url) as agent:
            await agent.client.send(p.Presence(state="available"))
            offer = await agent.client.expect(p.CallOffer, within=20, call_id=call_id)
            out["offer_no_video"] = offer.no_video
            await agent.client.send(p.Accept(call_id=call_id))
            started = await agent.client.expect(p.CallStarted, within=10)
            out["started_no_video"] = started.no_video
            agent.call_id = call_id
            await page.wait_for_selector("[data-screen=call]")
            await agent.connect_media()
            await page.wait_for_selector("body[data-rtc=connected]")
            await screenshot(page, "voice-only")
            # what the customer's answer sends: a microphone track, and no camera
            sdp = agent.peer.pc.remoteDescription.sdp
            out["sends"] = sorted(m.split()[0] for m in sdp.split("m=")[1:] if "a=msid:" in m)
            out["screen"] = await page.inner_text("#screen")
            await agent.api(f"/api/counter/sessions/{call_id}/claim", {"msisdn": LINE})
            await keypad(page, PASSWORD)
            out["password"] = await send_password(page)
            out["level"] = str((await env.app[SESSIONS].get(call_id)).level)
            await agent.hangup()
            await page.wait_for_selector("[data-screen=rating]")
        await env.close_page(page)
        return out

    r = env.run(scenario(), timeout=90)
    assert r["offer_no_video"] == "denied" and r["started_no_video"] == "denied", r
    assert r["sends"] == ["audio"], r["sends"]
    assert "只有声音" in r["screen"], r["screen"]
    assert (r["password"], r["level"]) == ("ok", "A1"), r


def test_true_queue_positions_across_lanes_in_a_live_region_kept_in_place(env: BrowserEnv) -> None:
    """A general caller, then two care callers: the care lane is served first, so each is told how
    many are truly ahead; when the first care caller is served the others move up, in the same
    live region (not rebuilt, so screen readers announce the change)."""

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        first = await env.new_page()
        await to_queue(first, senior=False, face=False)
        care1 = await env.new_page()
        care1_id = await to_queue(care1, senior=True, face=False)
        care2 = await env.new_page()
        await to_queue(care2, senior=True, face=False)
        told = "(n) => document.getElementById('queue-position').textContent === n"
        await first.wait_for_function(told, arg="前面还有 2 位")
        await care2.wait_for_function(told, arg="前面还有 1 位")
        out["before"] = [await pg.text_content("#queue-position") for pg in (first, care1, care2)]
        await first.evaluate("document.getElementById('queue').dataset.kept = 'yes'")
        async with Agent.online(env.base_url) as agent:
            await agent.answer_next_call(care1_id)
            await first.wait_for_function(told, arg="前面还有 1 位")
            await care2.wait_for_function(told, arg="下一位就是您")
            out["after"] = [await pg.text_content("#queue-position") for pg in (first, care2)]
            out["kept"] = await first.evaluate("document.getElementById('queue').dataset.kept ?? null")
            out["live"] = await first.get_attribute("#queue", "aria-live")
            await agent.hangup()
        for pg in (first, care2):
            await pg.tap("#btn-leave")
            await env.close_page(pg)
        await env.close_page(care1)
        return out

    r = env.run(scenario(), timeout=90)
    assert r["before"] == ["前面还有 2 位", "下一位就是您", "前面还有 1 位"], r["before"]
    assert r["after"] == ["前面还有 1 位", "下一位就是您"], r["after"]
    assert r["kept"] == "yes" and r["live"] == "polite", r


def test_no_animation_under_reduced_motion_no_sideways_scroll_title_on_one_line(journey: dict[str, Any]) -> None:
    r = journey
    assert {"waiting", "call", "step", "keypad", "tx-result", "result"} <= set(r["moving"]), r["moving"]
    assert not any(r["moving"].values()), r["moving"]
    wide = [m for m in r["reflow"] if m["scroll"] > m["width"]]
    assert not wide, wide
    wrapped = [m for m in r["reflow"] if m["titleLines"] not in (None, 1)]
    assert not wrapped and any(m["titleLines"] == 1 for m in r["reflow"]), r["reflow"]


def test_care_link_puts_a_holder_aged_65_or_more_in_the_care_lane(env: BrowserEnv) -> None:
    """An agent mints a care link for a line (sealed, expiring); its holder (born 1951) opens it: the
    page says they go to the care lane, senior mode is on, the call waits in the care lane, and the
    server's decision is audited.  A younger holder's link, or a forged one, changes nothing."""
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Agent.online(env.base_url) as agent:
            old = await agent.api("/api/counter/care-links", {"msisdn": "13700137000"})
            young = await agent.api("/api/counter/care-links", {"msisdn": LINE})
            hint = old["link"].split("hint=")[1]
        async with aiohttp.ClientSession() as anyone:  # a customer: no staff cookie
            for name, value in (("young", young["link"].split("hint=")[1]), ("forged", hint[:-4] + "AAAA")):
                async with anyone.post(env.base_url + "/api/customer/care-hint", json={"hint": value}) as resp:
                    out[name] = await resp.json()
        page = await env.new_page()
        await page.goto(env.base_url + old["link"])
        await page.wait_for_selector("body[data-care-by-age] [data-screen=entry] #care-note")
        out["note"] = await page.text_content("#care-note")
        await screenshot(page, "senior-care-link")
        out["senior"] = await page.evaluate("document.body.classList.contains('senior')")
        out["spoken"] = await spoken(page)
        await page.tap("#btn-senior")
        await page.tap("#btn-consent")
        await page.tap("#btn-face-no")
        call_id = await queued(page)
        return await _lane_and_leave(env, page, call_id, out)

    r = env.run(scenario(), timeout=60)
    assert "关爱专线" in r["note"] and "65" in r["note"] and r["senior"], r
    assert any("关爱专线" in s for s in r["spoken"]), r["spoken"]
    assert r["lane"] == "care", r["lane"]
    assert len(r["audit"]) == 1 and r["audit"][0]["account"], r["audit"]  # the line, pseudonymised by the log
    assert r["audit"][0]["details"]["age_at_least"] == 65 and "age" not in r["audit"][0]["details"], r["audit"]
    assert r["young"]["care"] is False and r["forged"]["care"] is False, (r["young"], r["forged"])


#: The top bar and the hang-up button, measured: the title on one line, "Repeat" whole, hang-up on-screen.
BAR_AND_HANGUP = """
() => {
  const title = document.getElementById("app-title");
  const label = document.getElementById("btn-repeat-label");
  const repeat = document.getElementById("btn-repeat").getBoundingClientRect();
  const hangup = document.getElementById("btn-hangup")?.getBoundingClientRect() ?? null;
  const line = parseFloat(getComputedStyle(title).fontSize) * 1.5;
  return { width: innerWidth, lang: document.documentElement.lang, label: label.textContent,
           titleLines: getComputedStyle(title).display === "none" ? null  // its place given to a tool
             : Math.round(title.getBoundingClientRect().height / line),
           labelClipped: label.scrollWidth > label.clientWidth + 1 || repeat.right > innerWidth + 0.5,
           screen: document.body.dataset.screen, hangupBottom: hangup && Math.round(hangup.bottom),
           hangupInside: hangup && hangup.top >= 0 && hangup.bottom <= innerHeight && hangup.right <= innerWidth };
}
"""


def test_reconnect_banner_keeps_hang_up_on_screen_title_and_repeat_whole(env: BrowserEnv) -> None:
    """In a call with the reconnect banner shown, at 390x844 and at 320 px wide, in zh-CN and in
    English: the hang-up button stays on-screen, the title stays on one line and "Repeat" is whole."""

    async def scenario() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        page = await env.new_page()

        async def measure() -> None:
            for width in (390, 320):
                await page.set_viewport_size({"width": width, "height": 844 * width // 390})
                seen.append(await page.evaluate(BAR_AND_HANGUP))
            await page.set_viewport_size({"width": 390, "height": 844})

        await page.tap("#btn-senior")
        await page.wait_for_selector("[data-screen=consent]")
        await measure()
        await page.tap("#btn-lang")  # the call in English first, then in zh-CN
        await page.wait_for_function("() => document.documentElement.lang === 'en'")
        await measure()
        await page.tap("#btn-consent")
        await page.tap("#btn-face-no")
        call_id = await queued(page)
        async with Agent.online(env.base_url) as agent:
            await agent.take(page, call_id)
            await page.wait_for_selector("body[data-rtc=connected]")
            await env.app[SIGNALING].notify_customer(call_id, p.NoticeCode.SERVER_RESTART, "restart")
            await page.wait_for_selector("[data-screen=call] #reconnecting")
            await measure()
            await page.tap("#btn-lang")
            await page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
            await page.wait_for_selector("[data-screen=call] #reconnecting")
            await measure()
            await agent.hangup()
            await page.wait_for_selector("[data-screen=rating]")
        await env.close_page(page)
        return seen

    seen = env.run(scenario(), timeout=90)
    print("reconnect banner:", seen)
    calls = [m for m in seen if m["screen"] == "call"]
    assert len(calls) == 4 and {m["lang"] for m in calls} == {"zh-CN", "en"}, seen
    assert [m for m in calls if not m["hangupInside"]] == [], seen
    assert [m for m in seen if m["labelClipped"]] == [], seen
    assert [m for m in seen if m["titleLines"] not in (None, 1)] == [], seen
    assert {m["lang"] for m in seen if m["titleLines"] == 1} == {"zh-CN", "en"}, seen


def test_agent_console_shows_why_a_voice_only_customer_has_no_video(env: BrowserEnv) -> None:
    """Camera refused, 只用声音办理: the real agent console answers and shows the "no video" badge
    with the reason (the server's code, worded by the console), and the call connects by voice."""
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        customer, _ = await _voice_only(env)
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        await answer(agent, customer)
        await agent.wait_for_selector("#lane-badge #no-video")
        out["badge"] = await agent.text_content("#no-video")
        out["no_video"] = await agent.evaluate("document.body.dataset.noVideo")
        await customer.wait_for_selector("body[data-rtc=connected]")
        out["rtc"] = await customer.evaluate("document.body.dataset.rtc")
        await hang_up(agent, customer)
        await env.close_page(customer)
        await env.close_page(agent)
        return out

    r = env.run(scenario(), timeout=90)
    assert r["no_video"] == "denied", r
    assert "只有声音" in r["badge"] and "摄像头" in r["badge"], r["badge"]
    assert r["rtc"] == "connected", r


def test_number_typed_on_the_first_screen_puts_a_holder_aged_65_or_more_in_the_care_lane(env: BrowserEnv) -> None:
    """The first screen's optional number field (the phone's number keypad): a holder born 1951 types
    their number and taps the ordinary 视频柜台; the server (not the page) puts the call in the care
    lane by the holder's age, audited as for a care link (the line pseudonymised by the log); the page
    turns senior mode on and says so.  A younger holder's number, or garbage, changes nothing."""
    old_line = "13700137000"

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as anyone:
            for name, value in (("young", LINE), ("garbage", "1370013700x")):
                async with anyone.post(env.base_url + "/api/customer/join", json={"msisdn": value}) as resp:
                    out[name] = (resp.status, (await resp.json())["care"])
        page = await env.new_page()
        out["field"] = await page.evaluate(
            "(() => { const f = document.getElementById('entry-phone'); const r = f.getBoundingClientRect();"
            " return [f.inputMode, f.type, parseFloat(getComputedStyle(f).fontSize), r.bottom <= innerHeight]; })()")
        await page.tap("#entry-phone")
        await page.keyboard.type(old_line)
        await page.tap("#btn-video")
        await page.tap("#btn-consent")
        await page.tap("#btn-face-no")
        call_id = await queued(page)
        await page.wait_for_selector("body[data-care-by-age] #notice:not([hidden])")
        out["notice"] = await page.text_content("#notice")
        out["senior"] = await page.evaluate("document.body.classList.contains('senior')")
        out["spoken"] = await spoken(page)
        return await _lane_and_leave(env, page, call_id, out)

    r = env.run(scenario(), timeout=60)
    assert r["field"][:2] == ["numeric", "tel"] and r["field"][2] >= 20 and r["field"][3], r["field"]
    assert "关爱专线" in r["notice"] and "长者模式" in r["notice"] and "65" in r["notice"] and r["senior"], r
    assert any("关爱专线" in s for s in r["spoken"]), r["spoken"]
    assert r["lane"] == "care", r["lane"]
    assert len(r["audit"]) == 1 and r["audit"][0]["details"]["source"] == "typed", r["audit"]
    assert r["audit"][0]["account"] and old_line not in str(r["audit"]), r["audit"]
    assert r["young"] == (200, False) and r["garbage"] == (200, False), (r["young"], r["garbage"])
