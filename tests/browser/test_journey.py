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

import asyncio
import base64
import datetime as dt
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from counter.appkeys import ACCOUNTS, IDENTITY, SESSIONS
from counter.audit import AUDIT
from counter.sessions import Level
from tests.browser.conftest import FACES
from tests.browser.harness import SCREENSHOTS, BrowserEnv, spoken, to_queue

DESKTOP = {"width": 1440, "height": 900}
MATCHING_LINE = "13900139000"  # 奥巴马: the reactive camera shows him
OTHER_LINE = "13800138000"  # 妮可·基德曼: not the person in the refusal test's camera (sarah_2)


class StaffWire:
    """Everything staff pages received: every HTTP response body and every WebSocket frame, as
    text, for checking that a secret for the customer's eyes only never reached staff."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.frames: list[str] = []
        self._reads: list[asyncio.Task[None]] = []

    def watch(self, page: Any) -> None:
        async def read(response: Any) -> None:
            try:
                body = await response.body()
            except Exception:  # a redirect or a response gone with its page has no body
                return
            self.bodies.append(f"{response.url} {body.decode('utf-8', 'replace')}")

        def frame(payload: str | bytes) -> None:
            self.frames.append(payload if isinstance(payload, str) else payload.decode("utf-8", "replace"))

        page.on("response", lambda r: self._reads.append(asyncio.ensure_future(read(r))))
        page.on("websocket", lambda ws: ws.on("framereceived", frame))

    async def settled(self) -> None:
        await asyncio.gather(*self._reads)

    def containing(self, secret: str) -> list[str]:
        return [x[:300] for x in self.bodies + self.frames if secret in x]


async def staff_page(env: BrowserEnv, username: str, password: str, home: str, wire: StaffWire | None = None,
                     *, bypass_csp: bool = False) -> Any:
    """A desktop page logged in through the real login form (everything it receives on ``wire``);
    ``bypass_csp`` only for pages that inject axe-core."""
    ctx = await env.browser.new_context(viewport=DESKTOP, locale="zh-CN", permissions=["camera", "microphone"],
                                        bypass_csp=bypass_csp)
    env.contexts.append(ctx)
    page = await ctx.new_page()
    page.set_default_timeout(20000)
    if wire is not None:
        wire.watch(page)
    await page.goto(env.base_url + "/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#btn-login")
    await page.wait_for_url(env.base_url + home)
    await page.wait_for_selector("body[data-ready='1']")
    return page


async def shot(page: Any, name: str) -> None:
    """docs/screenshots/<name>.png of the whole page, from the top, without transient toasts
    (only with ``CONSOLE_SCREENSHOTS=1``, so that test runs leave the committed images alone)."""
    if not os.environ.get("CONSOLE_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("() => { window.scrollTo(0, 0); document.getElementById('toast').hidden = true; }")
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled", caret="hide", full_page=True)


#: The customer's camera: a 640x480 canvas whose frames the test loads (``window.__camera.load``);
#: it shows the neutral frame, and performs each action the page prompts (``body[data-live-action]``)
#: once: out along the ramp, held, back, neutral.  The page's microphone stays the fake device.
REACTIVE_CAMERA = """
(() => {
  const canvas = document.createElement("canvas");
  canvas.width = 640; canvas.height = 480;
  const ctx = canvas.getContext("2d");
  const cam = window.__camera = { frames: {}, plan: [], played: [] };
  const img = (url) => new Promise((ok) => { const i = new Image(); i.onload = () => ok(i); i.src = url; });
  cam.load = async (urls) => {
    for (const [k, list] of Object.entries(urls)) cam.frames[k] = await Promise.all(list.map(img));
    return Object.keys(cam.frames).length;
  };
  const step = 66;
  cam.perform = (action) => {
    const out = cam.frames[action] || [];
    const back = [...out].reverse().slice(1);
    const hold = Math.round((action === "blink" ? 600 : 1200) / step);
    const plan = [];
    for (let i = 0; i < 5; i++) plan.push("neutral:0");
    out.forEach((_, i) => { plan.push(`${action}:${i}`, `${action}:${i}`); });
    for (let i = 0; i < hold; i++) plan.push(`${action}:${out.length - 1}`);
    back.forEach((_, i) => { plan.push(`${action}:${out.length - 2 - i}`, `${action}:${out.length - 2 - i}`); });
    cam.plan = plan;
    cam.played.push(action);
  };
  setInterval(() => {
    const [name, i] = (cam.plan.shift() || "neutral:0").split(":");
    const frame = (cam.frames[name] || cam.frames.neutral || [])[Number(i)];
    if (frame) ctx.drawImage(frame, 0, 0, 640, 480);
  }, step);
  new MutationObserver((records) => {
    for (const r of records) if (r.attributeName === "data-live-action" && document.body.dataset.liveAction)
      cam.perform(document.body.dataset.liveAction);
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-live-action"] });
  const md = navigator.mediaDevices;
  const gum = md.getUserMedia.bind(md);
  md.getUserMedia = async (c) => {
    const wantsVideo = !!(c && c.video);
    const stream = await gum({ ...c, video: false, audio: !!(c && c.audio) || !wantsVideo });
    if (!wantsVideo) return stream;
    if (!(c && c.audio)) stream.getAudioTracks().forEach((t) => { stream.removeTrack(t); t.stop(); });
    stream.addTrack(canvas.captureStream(15).getVideoTracks()[0]);
    return stream;
  };
})();
"""
#: Counts the customer's taps (every touch that starts on the page), for the journey's tap budget.
COUNT_TAPS = "window.__taps = []; addEventListener('touchstart', (e) => window.__taps.push("\
    "e.target.closest('button, a, input')?.id || e.target.tagName), true);"
CAMERA_PHOTO = FACES / "face_recognition" / "obama" / "obama1.jpg"
#: Per action: (degrees at the end of the ramp, vertical, cylinder radius in eye distances); chosen
#: by measuring YuNet's readings of this photo (see ``frame_readings``), never by easing the checker.
MOVES = {"turn_left": (55.0, False, 1.6), "turn_right": (-55.0, False, 1.6), "nod": (40.0, True, 1.2)}


def camera_frame(photo: Path) -> Any:
    """The photo as a 640x480 camera frame (scaled to fit, black bars), like the y4m clips."""
    import cv2
    import numpy as np

    image = cv2.imread(str(photo))
    assert image is not None, photo
    h, w = image.shape[:2]
    scale = min(640 / w, 480 / h)
    image = cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((480, 640, 3), np.uint8)
    y, x = (480 - image.shape[0]) // 2, (640 - image.shape[1]) // 2
    out[y : y + image.shape[0], x : x + image.shape[1]] = image
    return out


def render_moves(service: Any, photo: Path) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
    """Frames of the holder doing each action (a 4-step ramp out; one closed-eye frame for the blink)
    and the identity engine's readings of them relative to the neutral frame (yaw/pitch/openness)."""
    from tests.identity import synth

    neutral = camera_frame(photo)
    face = max(service.faces.detect_sync(neutral), key=lambda f: f.area)
    frames: dict[str, list[Any]] = {"neutral": [neutral], "blink": [synth.close_eyes(neutral, face)]}
    for action, (degrees, vertical, radius) in MOVES.items():
        frames[action] = [synth.turn(neutral, face, degrees * k / 4, vertical, radius) for k in (1, 2, 3, 4)]
    base = service.liveness.observe_sync(neutral, 0.0)[0]
    readings = {
        name: [
            f"yaw{o.yaw - base.yaw:+.3f} pitch{o.pitch - base.pitch:+.3f} "
            f"open{o.openness / (base.openness or 1):.2f} faces{o.faces}"
            for o in (service.liveness.observe_sync(f, 0.0)[0] for f in frames[name])
        ]
        for name in frames
    }
    return frames, readings


async def reactive_customer(env: BrowserEnv) -> tuple[Any, dict[str, list[str]]]:
    """A customer page whose camera performs the prompted liveness actions; the frames' readings."""
    import cv2

    service = env.app[IDENTITY].ready()
    frames, readings = await service.faces.run(render_moves, service, CAMERA_PHOTO)
    def url(frame: Any) -> str:
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()

    urls = {name: [url(f) for f in frames[name]] for name in frames}
    customer = await env.new_page()
    await customer.context.add_init_script(REACTIVE_CAMERA)
    await customer.context.add_init_script(COUNT_TAPS)
    await customer.reload()
    await customer.wait_for_selector("[data-screen=entry]")
    assert await customer.evaluate("(u) => window.__camera.load(u)", urls) == len(urls)
    return customer, readings


def identity_api_installed(env: BrowserEnv) -> bool:
    assert env.app is not None
    paths = [r.resource.canonical for r in env.app.router.routes() if r.resource is not None]
    return "/api/counter/sessions/{sid}/identity/face" in paths


async def accept_care_call(env: BrowserEnv, customer: Any, agent: Any) -> str:
    await to_queue(customer, senior=True)
    await agent.click("#btn-available")
    await agent.wait_for_selector("#offer:not([hidden]) .badge.care")
    await agent.wait_for_selector("#queue [data-lane=care] li")
    await agent.keyboard.press("Alt+A")  # the documented shortcut
    await customer.wait_for_selector("[data-screen=call]")
    await agent.wait_for_selector("body[data-remote-video]")
    await customer.wait_for_selector("body[data-rtc=connected]")
    call_id: str = await agent.evaluate("document.body.dataset.call")
    return call_id


async def claim(agent: Any, msisdn: str) -> None:
    await agent.fill("#claim-msisdn", msisdn)
    await agent.click("#btn-claim")
    await agent.wait_for_selector("#account .badge")
    await agent.click("#btn-consent-yes")
    await agent.wait_for_selector("#consent-state.ok")


async def level(env: BrowserEnv, call_id: str) -> Level:
    assert env.app is not None
    return (await env.app[SESSIONS].get(call_id)).level


async def face_check(env: BrowserEnv, customer: Any, agent: Any, call_id: str, msisdn: str) -> dict[str, Any]:
    """Agent presses Alt+F; the customer's page guides and auto-captures; then the check itself."""
    await agent.keyboard.press("Alt+F")
    await customer.wait_for_selector("body[data-captured=face]", timeout=60000)
    check = await agent.wait_for_selector("#checks .check[data-kind=face]", timeout=60000)
    ok = await check.get_attribute("data-ok") == "true"
    return {"decision": "match" if ok else "no_match", "shown": await check.text_content()}


async def liveness(env: BrowserEnv, customer: Any, agent: Any, call_id: str) -> dict[str, Any]:
    """Alt+L; the customer's page prompts each action in turn and the customer performs it; the
    witness takes the frames and the identity API evaluates them when the page says it is done."""
    out: dict[str, Any] = {}
    await agent.keyboard.press("Alt+L")
    await agent.wait_for_selector("body[data-liveness]")
    if await agent.evaluate("() => document.body.dataset.liveness") == "asked":
        await customer.wait_for_selector("body[data-live-action]")
    check = await agent.wait_for_selector("#checks .check[data-kind=liveness]", timeout=60000)
    out["api"] = await check.text_content()
    out["api_ok"] = await check.get_attribute("data-ok") == "true"
    out["performed"] = await customer.evaluate("() => window.__camera ? window.__camera.played : null")
    out["level"] = str(await level(env, call_id))
    return out


async def id_card_photo(env: BrowserEnv, msisdn: str, out: Path) -> Path:
    """A photo of the holder's ID card on a table: name, birth date and ID number (valid check digit)
    from the account, and a portrait cropped from another photo of him (obama2: neither the
    real-name photo on file nor the camera's)."""
    import cv2

    from tests.identity import synth

    acct = await env.app[ACCOUNTS].get(msisdn)
    assert acct is not None
    holder = acct.holder
    portrait = cv2.imread(str(FACES / "face_recognition" / "obama" / "obama2.jpg"))
    assert portrait is not None
    card = synth.render_card(synth.CardHolder(
        holder.id_number, synth.portrait_crop(portrait), name=holder.name,
        sex="男" if int(holder.id_number[16]) % 2 else "女",  # GB 11643: the 17th digit's parity
        birth=dt.date.fromisoformat(holder.birth_date), address=("北京市东城区示例路1号",),
    ))
    photo = synth.on_table(card, synth.rotated(-4, centre=(640, 480), width=900))
    assert cv2.imwrite(str(out), photo, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return out


async def id_capture(env: BrowserEnv, agent: Any, msisdn: str, tmp: Path) -> dict[str, Any]:
    """The customer sent a photo of her ID card; the agent uploads it from the console: the identity
    API's real OCR, number and portrait checks, the image kept encrypted, the check audited."""
    photo = await id_card_photo(env, msisdn, tmp / "id-card.jpg")
    await agent.set_input_files("#id-upload", str(photo))
    check = await agent.wait_for_selector("#checks .check[data-kind=id_card]", timeout=60000)
    return {"ok": await check.get_attribute("data-ok") == "true", "shown": await check.text_content()}


async def puk_picker(env: BrowserEnv, agent: Any, call_id: str) -> dict[str, Any]:
    """The picker searched for "PUK", once the console has the catalog for the session's current level."""
    await agent.keyboard.press("Alt+T")
    await agent.wait_for_selector(f"body[data-catalog-level={await level(env, call_id)}]")
    await agent.fill("#tx-search", "PUK")
    await agent.wait_for_selector("#tx-list li[data-code='puk.query']")
    item = await agent.query_selector("#tx-list li[data-code='puk.query']")
    return {"enabled": await item.get_attribute("data-enabled"), "text": await item.text_content()}


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
        out["face"] = await face_check(env, customer, agent, call_id, MATCHING_LINE)
        await customer.wait_for_selector("[data-screen=call]")
        out["liveness"] = await liveness(env, customer, agent, call_id)
        out["level_after_liveness"] = await level(env, call_id)
        await customer.wait_for_selector("[data-screen=call]")
        out["id"] = await id_capture(env, agent, MATCHING_LINE, tmp_path)
        out["level_after_id"] = await level(env, call_id)
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
        await agent.keyboard.press("Alt+H")  # asks once: Enter confirms
        await agent.wait_for_selector("#hangup-dialog[open]")
        await agent.keyboard.press("Enter")
        await customer.wait_for_selector("[data-screen=rating]")
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
        await env.close_page(customer)
        for page in (agent, sup, aud):
            await page.context.close()
            env.contexts.remove(page.context)
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
        await agent.keyboard.press("Alt+H")  # asks once: Enter confirms
        await agent.wait_for_selector("#hangup-dialog[open]")
        await agent.keyboard.press("Enter")
        await customer.wait_for_selector("[data-screen=rating]")
        await env.close_page(customer)
        await agent.context.close()
        env.contexts.remove(agent.context)
        return out

    r = env.run(scenario(), timeout=180)
    assert r["face"]["decision"] == "no_match", r["face"]
    assert not r["liveness"]["api_ok"], ("a still photo must not pass the liveness challenge", r["liveness"])
    assert r["level"] == "A0"
    assert r["picker"]["enabled"] == "false" and "A3" in r["picker"]["text"], r["picker"]
    direct = r["direct"]
    assert direct["body"]["status"] == "refused" and "needs A3" in direct["body"]["reason"], direct
    assert "PUK" not in str(direct["body"].get("text_zh")), direct
