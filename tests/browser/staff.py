"""Staff consoles in the browser tests: desktop pages logged in through the real login form, what
they receive, and the agent's steps of a call (answer, claim, the PUK picker, hang up)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from counter.appkeys import SESSIONS
from counter.sessions import Level
from tests.browser.harness import SCREENSHOTS, BrowserEnv, to_queue

DESKTOP = {"width": 1440, "height": 900}


class StaffWire:
    """Everything staff pages received: every HTTP response body and every WebSocket frame, as
    text, for checking that a secret for the customer's eyes only never reached staff."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.frames: list[str] = []
        self._reads: list[asyncio.Task[None]] = []

    def watch(self, page: Any) -> None:
        """Keep what ``page`` receives from now on."""
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
        """Wait until every response body seen so far has been read."""
        await asyncio.gather(*self._reads)

    def containing(self, secret: str) -> list[str]:
        """What was received that holds ``secret`` (each cut to 300 characters)."""
        return [x[:300] for x in self.bodies + self.frames if secret in x]


async def staff_page(env: BrowserEnv, username: str, password: str, home: str, wire: StaffWire | None = None,
                     *, bypass_csp: bool = False, base_url: str | None = None, init_script: str | None = None,
                     ) -> Any:
    """A desktop page logged in through the real login form (everything it receives on ``wire``);
    ``bypass_csp`` only for pages that inject axe-core; ``base_url`` for another server than ``env``'s;
    ``init_script`` runs before the page's own scripts."""
    base = env.base_url if base_url is None else base_url
    ctx = await env.browser.new_context(viewport=DESKTOP, locale="zh-CN", permissions=["camera", "microphone"],
                                        bypass_csp=bypass_csp)
    env.contexts.append(ctx)
    if init_script is not None:
        await ctx.add_init_script(init_script)
    page = await ctx.new_page()
    page.set_default_timeout(20000)
    if wire is not None:
        wire.watch(page)
    await page.goto(base + "/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#btn-login")
    await page.wait_for_url(base + home)
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


async def answer(agent: Any, customer: Any, *, care: bool = False) -> None:
    """The agent goes available and takes the offered call by its documented shortcut (Alt+A), once
    the offer (``care``: a care-lane offer, with the care lane's queue shown) is on the console."""
    await agent.click("#btn-available")
    await agent.wait_for_selector("#offer:not([hidden]) .badge.care" if care else "#offer:not([hidden])")
    if care:
        await agent.wait_for_selector("#queue [data-lane=care] li")
    await agent.keyboard.press("Alt+A")
    await customer.wait_for_selector("[data-screen=call]")


async def answer_connected(agent: Any, customer: Any) -> str:
    """:func:`answer`, then both pages' media connected; the call id."""
    await answer(agent, customer)
    await customer.wait_for_selector("body[data-rtc=connected]")
    await agent.wait_for_selector("body[data-rtc=connected]")
    call_id: str = await agent.evaluate("document.body.dataset.call")
    return call_id


async def accept_care_call(env: BrowserEnv, customer: Any, agent: Any) -> str:
    """A senior customer queues, the agent answers the care-lane offer; the call id once the agent
    sees the customer's video and the customer's media is connected."""
    await to_queue(customer, senior=True)
    await answer(agent, customer, care=True)
    await agent.wait_for_selector("body[data-remote-video]")
    await customer.wait_for_selector("body[data-rtc=connected]")
    call_id: str = await agent.evaluate("document.body.dataset.call")
    return call_id


async def claim(agent: Any, msisdn: str) -> None:
    """The agent claims the line ``msisdn`` for the call and records the customer's consent."""
    await agent.fill("#claim-msisdn", msisdn)
    await agent.click("#btn-claim")
    await agent.wait_for_selector("#account .badge")
    await agent.click("#btn-consent-yes")
    await agent.wait_for_selector("#consent-state.ok")


async def level(env: BrowserEnv, call_id: str) -> Level:
    """The counter session's identity level, as the server holds it."""
    return (await env.app[SESSIONS].get(call_id)).level


async def puk_picker(env: BrowserEnv, agent: Any, call_id: str) -> dict[str, Any]:
    """The picker searched for "PUK", once the console has the catalog for the session's current level."""
    await agent.keyboard.press("Alt+T")
    await agent.wait_for_selector(f"body[data-catalog-level={await level(env, call_id)}]")
    await agent.fill("#tx-search", "PUK")
    await agent.wait_for_selector("#tx-list li[data-code='puk.query']")
    item = await agent.query_selector("#tx-list li[data-code='puk.query']")
    return {"enabled": await item.get_attribute("data-enabled"), "text": await item.text_content()}


async def hang_up(agent: Any, customer: Any) -> None:
    """The agent hangs up by shortcut (Alt+H asks once: Enter confirms); the customer is asked to rate."""
    await agent.keyboard.press("Alt+H")
    await agent.wait_for_selector("#hangup-dialog[open]")
    await agent.keyboard.press("Enter")
    await customer.wait_for_selector("[data-screen=rating]")


async def puk_confirmed(agent: Any, customer: Any) -> None:
    """Once the PUK query is run: the customer confirms on their own screen, sees the code and is
    done; the agent's history shows the query done."""
    await customer.wait_for_selector("[data-screen=confirm]")
    await customer.tap("#btn-confirm")
    await customer.wait_for_selector("[data-screen=tx-result] .secret-code")
    await customer.tap("#btn-result-done")
    await agent.wait_for_selector("#tx-history tr[data-code='puk.query'][data-status=done]")
