"""Reusable browser-test machinery: the real app on a free loopback port, one Chromium for the
session, mobile pages with speech and camera calls observed, and an agent driven through
:mod:`signaling.client` with a real aiortc peer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.browser.isolation import IsolatedLoop

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 390, "height": 844}
ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"

#: Installed before any page script: records every utterance, every getUserMedia constraint set,
#: and the bytes transferred up to the first getUserMedia call.
OBSERVE = """
(() => {
  window.__spoken = [];
  window.__gum = [];
  window.__bytesAtGum = null;
  window.__csp = [];
  document.addEventListener("securitypolicyviolation",
    (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  const synth = window.speechSynthesis;
  if (synth) {
    const speak = synth.speak.bind(synth);
    synth.speak = (u) => { window.__spoken.push({ text: u.text, lang: u.lang }); try { speak(u); } catch (e) {} };
  }
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => {
      if (window.__bytesAtGum === null) {
        const nav = performance.getEntriesByType("navigation").map((e) => e.transferSize);
        const res = performance.getEntriesByType("resource").map((e) => e.transferSize);
        window.__bytesAtGum = [...nav, ...res].reduce((a, b) => a + b, 0);
      }
      window.__gum.push(JSON.parse(JSON.stringify(c)));
      return gum(c);
    };
  }
})();
"""

#: The camera refused (the microphone allowed), as a customer who said no to the camera only.
DENY_CAMERA = """
(() => {
  const md = navigator.mediaDevices;
  const gum = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => c && c.video
    ? Promise.reject(new DOMException("Permission denied", "NotAllowedError")) : gum(c);
})();
"""


def chromium_args(y4m: Path) -> list[str]:
    return [
        "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--autoplay-policy=no-user-gesture-required",
    ]


def make_y4m(photo: Path, out: Path) -> Path:
    """A 3-second 640x480 fake camera clip of a still photo (ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is missing: apt-get install -y ffmpeg")
    vf = "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,format=yuv420p"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(photo), "-t", "3", "-r", "15",
         "-vf", vf, "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )
    return out


@dataclass
class BrowserEnv:
    """The app and one Chromium, both on the isolated loop (see :mod:`tests.browser.isolation`)."""

    iso: IsolatedLoop
    base_url: str = ""
    browser: Any = None
    playwright: Any = None
    runner: web.AppRunner | None = None
    _app: web.Application | None = None
    contexts: list[Any] = field(default_factory=list)

    @property
    def app(self) -> web.Application:
        """The running application (its components' app keys: signaling, sessions, audit...)."""
        if self._app is None:
            raise RuntimeError("the browser environment is not started")
        return self._app

    def run(self, coro: Any, timeout: float = 90.0) -> Any:
        return self.iso.run(coro, timeout)

    async def start(self, settings: Any, y4m: Path) -> None:
        from playwright.async_api import async_playwright

        from counter.app import build_app

        self._app = await build_app(settings)
        self.runner = web.AppRunner(self._app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(y4m))

    async def stop(self) -> None:
        for ctx in self.contexts:
            with contextlib.suppress(Exception):
                await ctx.close()
        if self.browser is not None:
            await self.browser.close()
        if self.playwright is not None:
            await self.playwright.stop()
        if self.runner is not None:
            await self.runner.cleanup()

    async def new_page(
        self, *, deny_camera: bool = False, lang: str = "zh-CN", bypass_csp: bool = False,
        saved: dict[str, Any] | None = None,
    ) -> Any:
        """A fresh phone-sized, touch page (own context: no cache, no storage) with observers installed.

        ``bypass_csp`` only for pages that inject axe-core (an inline script the CSP rightly blocks)."""
        ctx = await self.browser.new_context(
            viewport=VIEWPORT, device_scale_factor=1, is_mobile=True, has_touch=True, locale=lang,
            user_agent=ANDROID_UA, permissions=["camera", "microphone"], bypass_csp=bypass_csp,
        )
        self.contexts.append(ctx)
        await ctx.add_init_script(OBSERVE)
        if deny_camera:
            await ctx.add_init_script(DENY_CAMERA)
        if saved is not None:  # what the page kept in sessionStorage before a reload
            value = json.dumps(json.dumps(saved))
            await ctx.add_init_script(
                f"if (!sessionStorage.getItem('rc.customer')) sessionStorage.setItem('rc.customer', {value});"
            )
        page = await ctx.new_page()
        page.set_default_timeout(15000)
        await page.goto(self.base_url + "/customer")
        if saved is None:
            await page.wait_for_selector("[data-screen=entry]")
        return page

    async def close_page(self, page: Any) -> None:
        """Close ``page`` with its own context."""
        ctx = page.context
        await ctx.close()
        self.contexts.remove(ctx)

    async def close_all(self) -> None:
        """Close every page's context still open."""
        for ctx in list(self.contexts):
            await ctx.close()
            self.contexts.remove(ctx)


async def spoken(page: Any) -> list[str]:
    """Every text the page handed to speechSynthesis.speak, in order."""
    texts: list[str] = await page.evaluate("window.__spoken.map((u) => u.text)")
    return texts


async def screenshot(page: Any, name: str) -> None:
    """Save docs/screenshots/customer-<name>.png (390x844) when ``CUSTOMER_SCREENSHOTS=1``."""
    if os.environ.get("CUSTOMER_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate(
        "Promise.all([...document.images].map((i) => i.complete ? 0 :"
        " new Promise((r) => { i.onload = i.onerror = r; })))"
    )
    await page.screenshot(path=str(SCREENSHOTS / f"customer-{name}.png"), animations="disabled", caret="hide")


async def to_queue(page: Any, *, senior: bool = False, face: bool = True) -> str:
    """Entry -> consent -> face consent -> camera -> queue; the call id once the queue has answered."""
    await page.tap("#btn-senior" if senior else "#btn-video")
    await page.tap("#btn-consent")
    await page.tap("#btn-face-yes" if face else "#btn-face-no")
    return await queued(page)


async def queued(page: Any) -> str:
    """Wait for the first queue position on the waiting screen; the call id."""
    await page.wait_for_selector("body[data-position] [data-screen=waiting] #queue-position")
    call_id: str = await page.evaluate("document.body.dataset.call")
    return call_id


async def keypad(page: Any, digits: str) -> None:
    """Open the call's keypad and tap ``digits`` on it."""
    await page.tap("#btn-type")
    await page.wait_for_selector("[data-screen=keypad]")
    for key in digits:
        await page.tap(f".key[data-key='{key}']")


async def send_password(page: Any) -> str:
    """Send what the keypad holds as the service password; the server's answer as the page shows it."""
    await page.tap("#btn-send")
    await page.wait_for_selector("body[data-password]")
    answer: str = await page.evaluate("document.body.dataset.password")
    return answer


class Agent:
    """A logged-in agent on the signaling socket with a real aiortc peer (sends synthetic video)."""

    def __init__(self, http: aiohttp.ClientSession, client: Any) -> None:
        self.http = http
        self.client = client
        self.call_id = ""
        self.base_url = ""
        self.csrf = ""
        self.peer: Any = None
        self._ice_task: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def online(cls, base_url: str, username: str = "agent1", password: str = "agent1-demo",
                     ) -> AsyncIterator[Agent]:
        from signaling import protocol as p
        from signaling.client import SignalingClient

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(base_url + "/api/auth/login", json={"username": username, "password": password}) as r:
                assert r.status == 200, await r.text()
                csrf = (await r.json())["csrf_token"]
            client = await SignalingClient.connect(http, base_url)
            agent = cls(http, client)
            agent.base_url = base_url
            agent.csrf = csrf
            try:
                yield agent
            finally:
                if agent.peer is not None:
                    await agent.peer.close()
                with contextlib.suppress(Exception):
                    await client.send(p.Presence(state="away"))
                await client.close()

    async def answer_next_call(self, call_id: str) -> str:
        """Go available, accept the call ``call_id`` when offered (declining any other), wait for it to start."""
        from signaling import protocol as p

        await self.client.send(p.Presence(state="available"))
        offer = await self.client.expect(p.CallOffer, within=20)
        while offer.call_id != call_id:
            await self.client.send(p.Decline(call_id=offer.call_id, reason="test: not this one"))
            offer = await self.client.expect(p.CallOffer, within=20)
        await self.client.send(p.Accept(call_id=offer.call_id))
        await self.client.expect(p.CallStarted, within=10)
        self.call_id = str(offer.call_id)
        return self.call_id

    async def take(self, page: Any, call_id: str) -> None:
        """Answer the call ``call_id``, and connect media once the customer's ``page`` shows the call."""
        await self.answer_next_call(call_id)
        await page.wait_for_selector("[data-screen=call]")
        await self.connect_media()

    async def connect_media(self) -> None:
        """Offer audio/video to the customer's browser and wait until ICE connects."""
        from aiortc.sdp import candidate_from_sdp

        from signaling import protocol as p
        from signaling.client import ClientError
        from signaling.peer import VideoPeer

        if self.peer is not None:
            await self.peer.close()
        self.peer = VideoPeer()
        self.peer.pc.addTransceiver("audio", direction="recvonly")
        sdp = await self.peer.offer()
        await self.client.send(p.Sdp(call_id=self.call_id, kind="offer", sdp=sdp))
        answer = await self.client.expect(p.Sdp, within=15, kind="answer")
        await self.peer.accept(answer.sdp)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not self.peer.connected.is_set():
            if loop.time() > deadline:
                raise TimeoutError(f"no media connection within 15 s (ICE {self.peer.pc.iceConnectionState})")
            try:
                msg = await self.client.recv(0.2)
            except ClientError:
                if self.client.closed:
                    raise
                continue
            if isinstance(msg, p.Ice) and msg.candidate:
                cand = candidate_from_sdp(msg.candidate.removeprefix("candidate:"))
                cand.sdpMid = msg.sdp_mid
                cand.sdpMLineIndex = msg.sdp_mline_index
                await self.peer.pc.addIceCandidate(cand)

    async def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """A staff API call (POST with CSRF when there is a body); the JSON answer."""
        url = self.base_url + path
        if body is None:
            async with self.http.get(url) as resp:
                return await resp.json()
        async with self.http.post(url, json=body, headers={"X-CSRF-Token": self.csrf}) as resp:
            assert resp.status < 300, f"{path}: HTTP {resp.status} {await resp.text()}"
            return await resp.json()

    async def pending_request(self, code: str = "balance.query", inputs: dict[str, Any] | None = None,
                              msisdn: str = "13800138000", password: str = "246810") -> int:
        """A real request in this call's counter session (line claimed, A1 by its service password),
        waiting for the customer's confirmation; its id, for a ``confirm`` step."""
        sid = f"/api/counter/sessions/{self.call_id}"
        await self.api(f"{sid}/claim", {"msisdn": msisdn})
        await self.api(f"{sid}/verify-password", {"password": password})
        tx = await self.api(f"{sid}/transactions", {"code": code, "inputs": inputs or {},
                                                    "idempotency_key": f"{code}-{self.call_id}"})
        assert tx["status"] == "pending", tx
        return int(tx["id"])

    async def push(self, step: str, step_id: str, **params: Any) -> None:
        from signaling import protocol as p

        await self.client.send(p.PushStep(call_id=self.call_id, step_id=step_id, step=step, params=params))  # type: ignore[arg-type]

    async def step_result(self, step_id: str, within: float = 30) -> Any:
        from signaling import protocol as p

        return await self.client.expect(p.StepResult, within=within, step_id=step_id)

    async def chat(self, within: float = 10) -> Any:
        from signaling import protocol as p

        return await self.client.expect(p.Chat, within=within)

    async def hangup(self) -> None:
        from signaling import protocol as p

        await self.client.send(p.Hangup(call_id=self.call_id, reason="done"))


@contextlib.asynccontextmanager
async def in_call(env: BrowserEnv) -> AsyncIterator[tuple[Any, Agent]]:
    """A fresh customer page in the video lane and an agent who has taken its call, media connected."""
    page = await env.new_page()
    call_id = await to_queue(page)
    async with Agent.online(env.base_url) as agent:
        await agent.take(page, call_id)
        yield page, agent


def as_json(value: str | None) -> Any:
    return json.loads(value) if value else None
