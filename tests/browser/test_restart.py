"""Calls survive a restart: SIGTERM to ``counter serve`` and a start again, with a senior customer
(zh-CN) and the agent console in a call, both in Chromium.  Nobody clicks anything: both pages
reconnect by themselves and the call is back, media and all, within a bounded wait."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp

from tests.browser.harness import ANDROID_UA, OBSERVE, VIEWPORT, BrowserEnv, spoken, to_queue
from tests.browser.staff import answer_connected, staff_page
from tests.hardening.nodes import Node

BACK_WITHIN_MS = 30_000  # the promise: both back in the call within 30 s of the restart


async def _customer(env: BrowserEnv, base: str) -> Any:
    ctx = await env.browser.new_context(
        viewport=VIEWPORT, device_scale_factor=1, is_mobile=True, has_touch=True, locale="zh-CN",
        user_agent=ANDROID_UA, permissions=["camera", "microphone"],
    )
    env.contexts.append(ctx)
    await ctx.add_init_script(OBSERVE)
    page = await ctx.new_page()
    page.set_default_timeout(20000)
    await page.goto(base + "/customer")
    await page.wait_for_selector("[data-screen=entry]")
    return page


async def _generation(page: Any) -> int:
    return int(await page.evaluate("Number(document.body.dataset.rtcGeneration || 0)"))


async def _agents(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(base + "/api/auth/login", json={"username": "super1", "password": "super1-demo"}) as r:
            assert r.status == 200, await r.text()
        async with http.get(base + "/api/supervisor/queue") as r:
            body: dict[str, Any] = await r.json()
    return {a["id"]: a for a in body["agents"]}


def test_a_call_survives_sigterm_and_restart(env: BrowserEnv, tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        node = Node("restart", tmp_path, f"sqlite:///{tmp_path / 'counter.db'}")
        await node.start()
        try:
            agent = await staff_page(env, "agent1", "agent1-demo", "/agent", base_url=node.url)
            customer = await _customer(env, node.url)
            await to_queue(customer, senior=True)
            out["call"] = await answer_connected(agent, customer)
            before = await _generation(customer)

            await asyncio.to_thread(node.stop)  # SIGTERM: a graceful stop
            await customer.wait_for_selector("body[data-notice=server_restart]")
            out["restart_notice"] = await customer.text_content("#notice")
            await node.start()
            # Bounded waits, no clicks: the customer's media is connected again on a new peer
            # connection, and the console is in the same call with the media up.
            await customer.wait_for_function(
                "(before) => document.body.dataset.rtc === 'connected'"
                " && Number(document.body.dataset.rtcGeneration) > before",
                arg=before, timeout=BACK_WITHIN_MS,
            )
            await agent.wait_for_selector("body[data-rtc=connected]", timeout=BACK_WITHIN_MS)
            out["screen"] = await customer.get_attribute("[data-screen]", "data-screen")
            out["reconnecting"] = await customer.query_selector("#reconnecting")
            out["agent_call"] = await agent.evaluate("document.body.dataset.call")
            out["agent_state"] = await agent.text_content("#call-state")
            out["agents"] = await _agents(node.url)
            out["spoken"] = await spoken(customer)
        finally:
            await asyncio.to_thread(node.stop)
            await env.close_all()
        return out

    r = env.run(scenario(), timeout=240)
    assert r["agent_call"] == r["call"], "the console is back in the same call"
    assert r["screen"] == "call" and r["reconnecting"] is None, "the customer's screen says the real state"
    assert "通话中" in r["agent_state"]
    assert r["agents"]["agent1"]["state"] == "in_call" and r["agents"]["agent1"]["call_id"] == r["call"]
    assert "重启" in r["restart_notice"], r["restart_notice"]
    # zh-CN senior mode: every notice the customer heard is in Chinese (none of the server's English)
    assert r["spoken"] and not any(re.search(r"[A-Za-z]{4,}", s) for s in r["spoken"]), r["spoken"]
