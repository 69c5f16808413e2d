"""A call between two Chromiums across the veth pair of :mod:`tests.browser.netlab`: the app and the
agent's console in one namespace, the customer's phone page in the other.  Used by the network
scenario tests and by ``bench/network.py``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.browser.harness import ANDROID_UA, CHROMIUM, OBSERVE, VIEWPORT, chromium_args, to_queue
from tests.browser.netlab import ADDR_A, WATCH_PCS, NetLab, NsLoop

DESKTOP = {"width": 1440, "height": 900}


def host_on(addr: str) -> Callable[..., list[str]]:
    """aioice (the server's witness) gathers its host candidate on ``addr`` only; returns what it
    gathered with before, for :meth:`CallLab.close` to put back (aioice is one per process: left
    patched, every later test's peers would gather on a namespace address that is gone)."""
    import aioice.ice

    def _only(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return [addr]

    before: Callable[..., list[str]] = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = _only
    return before


@dataclass
class CallLab:
    """The namespaces, the app (in A), one Chromium per side; :meth:`call` places a call."""

    settings: Any
    y4m: Path
    net: NetLab = field(default_factory=NetLab)
    a: NsLoop | None = None
    b: NsLoop | None = None
    base_url: str = ""
    runner: web.AppRunner | None = None
    pw: dict[str, Any] = field(default_factory=dict)
    browsers: dict[str, Any] = field(default_factory=dict)
    customer: Any = None
    agent: Any = None
    gather_before: Callable[..., list[str]] | None = None

    def start(self) -> None:
        self.net.open()
        self.a, self.b = NsLoop(self.net.a), NsLoop(self.net.b)
        for loop in (self.a, self.b):
            if loop.error:
                raise RuntimeError(loop.error)
        self.a.run(self._serve())
        self.a.run(self._browser("a"))
        self.b.run(self._browser("b"))

    async def _serve(self) -> None:
        from counter.app import build_app

        self.gather_before = host_on(ADDR_A)
        app = await build_app(self.settings)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, ADDR_A, 0).start()
        port = self.runner.addresses[0][1]
        self.base_url = f"http://{ADDR_A}:{port}"

    async def _browser(self, side: str) -> None:
        from playwright.async_api import async_playwright

        self.pw[side] = await async_playwright().start()
        args = [*chromium_args(self.y4m), f"--unsafely-treat-insecure-origin-as-secure={self.base_url}"]
        self.browsers[side] = await self.pw[side].chromium.launch(executable_path=CHROMIUM, args=args)

    def call(self, *, relay_only: bool = False, turn_via: str | None = None) -> None:
        """A customer in B queues, the agent in A takes the call; returns once media flows both ways.
        ``turn_via`` ("host:port"): the customer only relays, through TURN over UDP at that address
        instead of the servers it is given (an impairment relay in front of coturn)."""
        assert self.a is not None and self.b is not None
        self.b.run(self._customer(relay_only, turn_via))
        self.a.run(self._agent(relay_only))
        self.b.run(self.customer.wait_for_selector("[data-screen=call]", timeout=20000))
        if not self.wait_flowing(20):
            raise TimeoutError(f"no media both ways within 20 s: {self.rx()}")

    async def _customer(self, relay_only: bool, turn_via: str | None) -> None:
        ctx = await self.browsers["b"].new_context(
            viewport=VIEWPORT, is_mobile=True, has_touch=True, locale="zh-CN", user_agent=ANDROID_UA,
            permissions=["camera", "microphone"])
        await ctx.add_init_script(OBSERVE)
        if relay_only or turn_via:
            await ctx.add_init_script("window.__relayOnly = true;")
        if turn_via:
            await ctx.add_init_script(f"window.__turnVia = {turn_via!r};")
        await ctx.add_init_script(WATCH_PCS)
        page = await ctx.new_page()
        page.set_default_timeout(20000)
        await page.goto(self.base_url + "/customer")
        await page.wait_for_selector("[data-screen=entry]")
        await to_queue(page)
        self.customer = page

    async def _agent(self, relay_only: bool) -> None:
        ctx = await self.browsers["a"].new_context(viewport=DESKTOP, locale="zh-CN",
                                                   permissions=["camera", "microphone"])
        if relay_only:
            await ctx.add_init_script("window.__relayOnly = true;")
        await ctx.add_init_script(WATCH_PCS)
        page = await ctx.new_page()
        page.set_default_timeout(20000)
        await page.goto(self.base_url + "/login")
        await page.fill("#username", "agent1")
        await page.fill("#password", "agent1-demo")
        await page.click("#btn-login")
        await page.wait_for_url(self.base_url + "/agent")
        await page.wait_for_selector("body[data-ready='1']")
        await page.click("#btn-available")
        await page.wait_for_selector("#offer:not([hidden])")
        await page.keyboard.press("Alt+A")
        await page.wait_for_selector("body[data-call]:not([data-call=''])")
        self.agent = page

    def rx(self) -> dict[str, Any]:
        """What each side has received so far (audio packets, decoded video frames, relayed or not)."""
        assert self.a is not None and self.b is not None
        return {"customer": self.b.run(self.customer.evaluate("window.__rx()"), 10),
                "agent": self.a.run(self.agent.evaluate("window.__rx()"), 10)}

    def flowing(self, window_s: float = 0.6) -> dict[str, dict[str, bool]]:
        """Which media grew on each side over ``window_s``."""
        before = self.rx()
        time.sleep(window_s)
        after = self.rx()
        return {side: {kind: after[side][kind] > before[side][kind] for kind in ("audio", "video")}
                for side in before}

    def wait_flowing(self, within: float, kinds: tuple[str, ...] = ("audio", "video")) -> float | None:
        """Seconds until ``kinds`` flow both ways, or None when not within ``within``."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            grew = self.flowing(0.4)
            if all(grew[side][k] for side in grew for k in kinds):
                return time.monotonic() - start
        return None

    def figures(self) -> dict[str, Any] | None:
        """The call's connection figures the agent's console sent (web/link_api.py), as stored."""
        from counter.appkeys import DB

        assert self.a is not None and self.runner is not None
        row: dict[str, Any] | None = self.a.run(self.runner.app[DB].fetchrow("SELECT * FROM call_link_stats"), 10)
        return row

    def page_text(self, side: str, selector: str) -> str:
        assert self.a is not None and self.b is not None
        loop, page = (self.b, self.customer) if side == "customer" else (self.a, self.agent)
        text: str = loop.run(page.evaluate(
            f"document.querySelector({selector!r})?.textContent ?? ''"), 10)
        return text

    def close(self) -> None:
        for side, loop in (("a", self.a), ("b", self.b)):
            if loop is None:
                continue
            with contextlib.suppress(Exception):
                if side in self.browsers:
                    loop.run(self.browsers[side].close(), 30)
                if side in self.pw:
                    loop.run(self.pw[side].stop(), 30)
            if side == "a" and self.runner is not None:
                with contextlib.suppress(Exception):
                    loop.run(self.runner.cleanup(), 30)
            loop.stop()
        self.net.close()
        if self.gather_before is not None:
            import aioice.ice

            aioice.ice.get_host_addresses = self.gather_before
            self.gather_before = None



def dataset(lab: CallLab, side: str, key: str) -> str | None:
    """``document.body.dataset[key]`` on one side's page."""
    assert lab.a is not None and lab.b is not None
    loop, page = (lab.b, lab.customer) if side == "customer" else (lab.a, lab.agent)
    value: str | None = loop.run(page.evaluate(f"document.body.dataset[{key!r}] ?? null"), 10)
    return value
