"""The pre-call check on the customer's page: camera, microphone and connection in plain words,
spoken; a phone without a working camera goes on with the voice only."""

from __future__ import annotations

from typing import Any

from tests.browser.harness import ANDROID_UA, OBSERVE, VIEWPORT, BrowserEnv, queued, spoken

NO_CAMERA = """
(() => {
  const md = navigator.mediaDevices;
  const gum = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => c && c.video ? Promise.reject(new DOMException("no camera", "NotFoundError")) : gum(c);
})();
"""
CHECKS = "els => els.map((e) => `${e.dataset.part}=${e.dataset.result}`)"
SENT_KINDS = "document.getElementById('self-video').srcObject.getTracks().map((t) => t.kind)"


def test_no_camera_goes_on_with_the_voice_only(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        ctx = await env.browser.new_context(
            viewport=VIEWPORT, is_mobile=True, has_touch=True, locale="zh-CN", user_agent=ANDROID_UA,
            permissions=["camera", "microphone"])
        env.contexts.append(ctx)
        await ctx.add_init_script(OBSERVE)
        await ctx.add_init_script(NO_CAMERA)
        page = await ctx.new_page()
        await page.goto(env.base_url + "/customer")
        await page.tap("#btn-video")
        await page.tap("#btn-consent")
        await page.tap("#btn-face-yes")
        await page.wait_for_selector("[data-screen=precheck][data-path=voice_only]")
        out = {
            "checks": await page.eval_on_selector_all(".checks li", CHECKS),
            "text": await page.text_content("[data-screen=precheck]"),
            "spoken": await spoken(page),
        }
        await page.tap("#btn-precheck-go")
        out["call"] = await queued(page)
        out["tracks"] = await page.evaluate(SENT_KINDS)
        await env.close_page(page)
        return out

    r = env.run(scenario())
    assert r["checks"] == ["camera=fail", "microphone=ok", "connection=ok"], r["checks"]
    assert "只用声音继续" in r["text"] and "摄像头：不能用" in r["text"], r["text"]
    assert any("摄像头：不能用" in s and "只用声音办理" in s for s in r["spoken"]), r["spoken"]
    assert r["call"] and r["tracks"] == ["audio"]
