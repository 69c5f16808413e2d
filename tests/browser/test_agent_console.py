"""The agent console without a call: login errors, role redirects, presence by shortcut, the
documented shortcuts, and the lanes the agent sees."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.browser.harness import BrowserEnv, to_queue
from tests.browser.staff import DESKTOP, answer, staff_page


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
        await env.close_page(page)

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
        await env.close_page(agent)
        return out

    r = env.run(scenario())
    assert "错误" in r["error"] and "Wrong" in r["error"]
    assert r["queue"] == ["care", "general"]
    assert r["shortcuts"] == [f"Alt+{k}" for k in "PAFLIVTCWHE"]
    assert r["disabled"] == [True, True, True, True], "call actions wait for a call"


#: Refusal and reason codes (counter/levels.py, the identity checks): never shown to the agent as such.
RAW_CODES = ("face_consent", "face_declined", "face_consented", "no_account", "a1_first", "a2_first",
             "attest_first", "proof_stale", "session_closed", "call_ended", "why_not", "number_mismatch")


def test_why_not_and_refused_steps_in_both_languages(env: BrowserEnv) -> None:
    """A greyed-out item and a refused identity step show the server's words in zh-CN and English,
    never a raw code: the PUK before any check, and the next checks (Alt+V) before a line is claimed."""

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        customer = await env.new_page()
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        await to_queue(customer)
        await answer(agent, customer)
        await agent.wait_for_selector("body[data-call]")
        await agent.keyboard.press("Alt+V")  # no line claimed yet: the server's steps say why not
        await agent.wait_for_selector("body[data-chain=error]")
        out["next"] = await agent.text_content("#chain-status")
        await agent.fill("#claim-msisdn", "13500135000")
        await agent.click("#btn-claim")
        await agent.wait_for_selector("#account .badge")
        await agent.keyboard.press("Alt+T")
        await agent.keyboard.type("PUK")
        why = "#tx-list li[data-code='puk.query'][data-enabled=false] .why"
        # the catalog is asked again once the claim is in: wait for the words of the claimed session
        await agent.wait_for_function(f"() => document.querySelector({json.dumps(why)})?.textContent.includes('A3')")
        out["greyed"] = await agent.text_content(why)
        await env.close_page(customer)
        await env.close_page(agent)
        return out

    r = env.run(scenario(), timeout=120)
    assert "此业务需要A3级核验" in r["greyed"] and "needs A3" in r["greyed"], r["greyed"]
    assert re.search(r"[\u4e00-\u9fff]", r["next"]) and re.search(r"[A-Za-z]{4,}", r["next"]), r["next"]
    for said in r.values():
        assert not [code for code in RAW_CODES if code in said], said
