"""The agent console without a call: login errors, role redirects, presence by shortcut, the
documented shortcuts, and the lanes the agent sees."""

from __future__ import annotations

from typing import Any

from tests.browser.harness import BrowserEnv
from tests.browser.test_journey import DESKTOP, staff_page


def test_login_presence_and_shortcuts(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        ctx = await env.browser.new_context(viewport=DESKTOP, locale="zh-CN")
        env.contexts.append(ctx)
        page = await ctx.new_page()
        await page.goto(env.base_url + "/agent")
        await page.wait_for_url(env.base_url + "/login")  # not logged in: the console sends you to log in
        await page.fill("#username", "agent1")
        await page.fill("#password", "wrong-password")
        await page.click("#btn-login")
        await page.wait_for_selector("#login-error:not([hidden])")
        out["error"] = await page.text_content("#login-error")
        await ctx.close()
        env.contexts.remove(ctx)

        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        await agent.goto(env.base_url + "/auditor")  # another role's console sends the agent home
        await agent.wait_for_url(env.base_url + "/agent")
        await agent.wait_for_selector("body[data-ready='1'][data-presence=away]")
        await agent.keyboard.press("Alt+P")
        await agent.wait_for_selector("body[data-presence=available]")
        out["queue"] = await agent.eval_on_selector_all("#queue [data-lane]", "els => els.map(e => e.dataset.lane)")
        await agent.keyboard.press("Alt+P")
        await agent.wait_for_selector("body[data-presence=away]")
        out["shortcuts"] = await agent.eval_on_selector_all(".shortcuts kbd", "els => els.map(e => e.textContent)")
        out["disabled"] = await agent.eval_on_selector_all(
            "#btn-face, #btn-id, #tx-search, #btn-close", "els => els.map(e => e.disabled)"
        )
        await agent.click("#btn-logout")
        await agent.wait_for_url(env.base_url + "/login")
        await agent.context.close()
        env.contexts.remove(agent.context)
        return out

    r = env.run(scenario())
    assert "错误" in r["error"] and "Wrong" in r["error"]
    assert r["queue"] == ["care", "general"]
    assert r["shortcuts"] == [f"Alt+{k}" for k in "PAFLIVTCWHE"]
    assert r["disabled"] == [True, True, True, True], "call actions wait for a call"
