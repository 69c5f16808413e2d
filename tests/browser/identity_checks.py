"""The holder of the demo line 13900139000 (奥巴马) in the browser tests: a customer camera that
performs the liveness actions the page prompts, and the agent's identity steps through the real
identity API (face check, liveness, ID card)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

from counter.appkeys import ACCOUNTS, IDENTITY
from tests.browser.conftest import FACES
from tests.browser.harness import BrowserEnv
from tests.browser.staff import level

MATCHING_LINE = "13900139000"  # 奥巴马: the reactive camera shows him

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


async def frame_urls(env: BrowserEnv) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The holder's frames (:func:`render_moves` of :data:`CAMERA_PHOTO`) as JPEG data URLs, for
    ``window.__camera.load``; the frames' readings."""
    import cv2

    service = env.app[IDENTITY].ready()
    frames, readings = await service.faces.run(render_moves, service, CAMERA_PHOTO)

    def url(frame: Any) -> str:
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()

    return {name: [url(f) for f in frames[name]] for name in frames}, readings


async def reactive_customer(env: BrowserEnv) -> tuple[Any, dict[str, list[str]]]:
    """A customer page whose camera performs the prompted liveness actions; the frames' readings."""
    urls, readings = await frame_urls(env)
    customer = await env.new_page()
    await customer.context.add_init_script(REACTIVE_CAMERA)
    await customer.context.add_init_script(COUNT_TAPS)
    await customer.reload()
    await customer.wait_for_selector("[data-screen=entry]")
    assert await customer.evaluate("(u) => window.__camera.load(u)", urls) == len(urls)
    return customer, readings


def identity_api_installed(env: BrowserEnv) -> bool:
    """Whether the app serves the identity API (the identity steps need it)."""
    paths = [r.resource.canonical for r in env.app.router.routes() if r.resource is not None]
    return "/api/counter/sessions/{sid}/identity/face" in paths


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


def holder_card(holder: Any) -> Any:
    """The account holder's ID card: name, birth date and ID number (valid check digit) from the
    account, and a portrait cropped from another photo of him (obama2: neither the real-name photo
    on file nor the camera's)."""
    import cv2

    from tests.identity import synth

    portrait = cv2.imread(str(FACES / "face_recognition" / "obama" / "obama2.jpg"))
    assert portrait is not None
    return synth.render_card(synth.CardHolder(
        holder.id_number, synth.portrait_crop(portrait), name=holder.name,
        sex="男" if int(holder.id_number[16]) % 2 else "女",  # GB 11643: the 17th digit's parity
        birth=dt.date.fromisoformat(holder.birth_date), address=("北京市东城区示例路1号",),
    ))


async def id_card_photo(env: BrowserEnv, msisdn: str, out: Path) -> Path:
    """A photo of the holder's ID card (:func:`holder_card`) on a table."""
    import cv2

    from tests.identity import synth

    acct = await env.app[ACCOUNTS].get(msisdn)
    assert acct is not None
    card = holder_card(acct.holder)
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


async def to_a3(env: BrowserEnv, customer: Any, agent: Any, call_id: str, msisdn: str, tmp: Path) -> dict[str, Any]:
    """The face check, the liveness challenge and the ID card in turn, the customer's page back on
    its call screen after each; what each said, and the session's level after liveness and after the card."""
    out: dict[str, Any] = {"face": await face_check(env, customer, agent, call_id, msisdn)}
    await customer.wait_for_selector("[data-screen=call]")
    out["liveness"] = await liveness(env, customer, agent, call_id)
    out["level_after_liveness"] = await level(env, call_id)
    await customer.wait_for_selector("[data-screen=call]")
    out["id"] = await id_capture(env, agent, msisdn, tmp)
    out["level_after_id"] = await level(env, call_id)
    return out
