"""Senior mode (长者模式): measured on the rendered page, screen by screen, through a whole call.

Also: declining face processing still gets service, every instruction is spoken and repeatable,
axe-core finds nothing serious (with the AAA 7:1 contrast rule on)."""

from __future__ import annotations

from typing import Any

from tests.browser.a11y import axe, measure, senior_problems
from tests.browser.harness import Agent, BrowserEnv, queued, screenshot, spoken


def test_senior_mode_every_screen(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        report: dict[str, Any] = {"problems": {}, "axe": {}, "spoken_on": {}}
        page = await env.new_page(bypass_csp=True)

        async def check(name: str) -> None:
            await page.wait_for_selector(f"[data-screen={name}]")
            report["problems"][name] = senior_problems(await measure(page))
            report["axe"][name] = await axe(page)
            report["spoken_on"][name] = (await spoken(page))[-1:]

        report["axe"]["entry"] = await axe(page)
        await page.tap("#btn-senior")
        await check("consent")
        await screenshot(page, "senior-consent")
        await page.tap("#btn-consent")
        await check("face-consent")
        await page.tap("#btn-face-no")
        call_id = await queued(page)
        await check("waiting")
        await screenshot(page, "senior-waiting")
        before = len(await spoken(page))
        await page.tap("#btn-repeat")
        again = await spoken(page)
        report["repeat"] = (len(again) == before + 1, again[-1] == again[-2])
        async with Agent.online(env.base_url) as agent:
            await agent.answer_next_call(call_id)
            await check("call")
            await agent.connect_media()
            await screenshot(page, "senior-call")
            await agent.push("face_capture", "f1")
            report["face_declined"] = await agent.step_result("f1")
            await page.wait_for_selector("[data-screen=face-declined]")
            await page.wait_for_selector("[data-screen=call]")
            await agent.push("info", "i1", text="请把手机放稳，看着屏幕", press="不用按任何键")
            await check("step")
            await screenshot(page, "senior-step")
            await page.tap("#btn-step-done")
            await agent.step_result("i1")
            tid = await agent.pending_request("spamblock.set", {"enabled": True})
            await agent.push("confirm", "c1", transaction_id=tid)
            await check("confirm")
            await screenshot(page, "senior-confirm")
            await page.tap("#btn-confirm")
            report["confirm"] = await agent.step_result("c1")
            await check("tx-result")
            await page.tap("#btn-result-done")
            await page.wait_for_selector("[data-screen=call]")
            await page.tap("#btn-type")
            await check("keypad")
            await page.tap("#btn-chat-close")
            await agent.hangup()
            await check("rating")
            await screenshot(page, "senior-rating")
            await page.tap("#rate-4")
            await check("result")
        await env.close_page(page)
        return report

    r = env.run(scenario(), timeout=150)
    assert all(not v for v in r["axe"].values()), r["axe"]
    assert all(not v for v in r["problems"].values()), r["problems"]
    assert all(r["spoken_on"].values()), r["spoken_on"]
    assert r["repeat"] == (True, True)
    assert r["confirm"].status == "ok"
    assert (r["face_declined"].status, r["face_declined"].value) == ("cancelled", "face_declined")
