"""The customer's page on a real phone's bad day: camera refused, network lost mid-call, screen
rotated, page sent to the background, and the English toggle."""

from __future__ import annotations

import asyncio
from typing import Any

from counter.appkeys import WITNESS
from signaling import protocol as p
from signaling.aio import SIGNALING
from signaling.state import customer_key
from tests.browser.harness import ANDROID_UA, Agent, BrowserEnv, in_call, queued, screenshot, spoken, to_queue


def test_camera_denied_says_how_to_fix_it(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        page = await env.new_page(deny_camera=True)
        await page.tap("#btn-video")
        await page.tap("#btn-consent")
        await page.tap("#btn-face-yes")
        await page.wait_for_selector("[data-screen=denied]")
        await screenshot(page, "camera-denied")
        out = {
            "browser": await page.get_attribute(".howto", "data-browser"),
            "howto": await page.text_content(".howto"),
            "spoken": await spoken(page),
        }
        await page.tap("#btn-retry")
        await page.wait_for_selector("[data-screen=denied]")
        await env.close_page(page)
        return out

    r = env.run(scenario())
    assert r["browser"] == "android_chrome"
    assert "相机" in r["howto"] and "麦克风" in r["howto"]
    assert any("摄像头被关掉" in s for s in r["spoken"])


def test_camera_help_matches_the_browser(env: BrowserEnv) -> None:
    agents = {
        "ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/17.5 Mobile/15E148 Safari/604.1",
        "wechat": "Mozilla/5.0 (Linux; Android 13; V2199A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0 "
                  "Mobile Safari/537.36 MicroMessenger/8.0.47",
        "firefox": "Mozilla/5.0 (Android 14; Mobile; rv:126.0) Gecko/126.0 Firefox/126.0",
        "android_chrome": ANDROID_UA,
        "other": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
    }

    async def scenario() -> list[str]:
        page = await env.new_page()
        kinds: list[str] = await page.evaluate(
            "async (uas) => { const m = await import('/static/customer/media.js');"
            " return uas.map((u) => m.browserKind(u)); }",
            list(agents.values()),
        )
        await env.close_page(page)
        return kinds

    assert env.run(scenario()) == list(agents)


def test_network_loss_rotation_background(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with in_call(env) as (page, agent):
            call_id = agent.call_id
            out["gen_before"] = await page.evaluate("document.body.dataset.rtcGeneration")

            # Network lost: the browser goes offline and the server loses the socket.
            await page.context.set_offline(True)
            await env.app[SIGNALING].conns[customer_key(call_id)].close()
            await agent.client.expect(p.PeerState, within=10, state="lost")
            await page.wait_for_selector("#reconnecting")
            await screenshot(page, "reconnecting")
            out["reconnect_spoken"] = (await spoken(page))[-1]
            await asyncio.sleep(1.0)
            await page.context.set_offline(False)
            await agent.client.expect(p.PeerState, within=15, state="back")
            await agent.connect_media()
            out["frames_after"] = await agent.peer.wait_frames(5)
            await page.wait_for_function("() => document.body.dataset.rtc === 'connected'")
            await page.wait_for_selector("#reconnecting", state="detached")
            await page.wait_for_function("() => document.body.dataset.witness === 'connected'")
            out["witness_legs"] = sorted(env.app[WITNESS].calls[call_id].legs)
            out["gen_after"] = await page.evaluate("document.body.dataset.rtcGeneration")

            # Rotation: the call and its buttons stay on screen.
            await page.set_viewport_size({"width": 844, "height": 390})
            out["landscape"] = await page.evaluate(
                """() => ['agent-video', 'btn-mute', 'btn-type', 'btn-hangup'].map((id) => {
                    const r = document.getElementById(id).getBoundingClientRect();
                    return r.width > 0 && r.height > 0 && r.bottom <= innerHeight + 1 && r.right <= innerWidth + 1;
                })"""
            )
            await page.set_viewport_size({"width": 390, "height": 844})

            # Background: the phone stopped the camera; coming back brings it back.
            gum_before = len(await page.evaluate("window.__gum"))
            await page.evaluate(
                """() => {
                    document.getElementById('self-video').srcObject.getVideoTracks()[0].stop();
                    Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
                    document.dispatchEvent(new Event('visibilitychange'));
                }"""
            )
            await page.wait_for_function(
                "() => document.getElementById('self-video').srcObject.getVideoTracks()[0]?.readyState === 'live'"
            )
            out["gum_after_background"] = len(await page.evaluate("window.__gum")) - gum_before
            out["frames_after_background"] = await agent.peer.wait_frames(agent.peer.frames + 5)

            # A line typed by the agent shows in the banner and is spoken.
            await agent.client.send(p.Chat(call_id=call_id, text="请稍等，我查一下"))
            await page.wait_for_selector("#notice:has-text('请稍等')")
            out["chat_spoken"] = (await spoken(page))[-1]

            # English, mid-call, and back.
            await page.tap("#btn-lang")
            out["english"] = await page.text_content("#btn-hangup")
            await page.tap("#btn-lang")
            out["chinese"] = await page.text_content("#btn-hangup")
            await agent.hangup()
            await page.wait_for_selector("[data-screen=rating]")
        await env.close_page(page)
        return out

    r = env.run(scenario(), timeout=150)
    assert "重新连接" in r["reconnect_spoken"]
    assert r["frames_after"] >= 5
    assert int(r["gen_after"]) == int(r["gen_before"]) + 1, "a new RTCPeerConnection after the network loss"
    assert "customer" in r["witness_legs"], "the recording goes on after the reconnection"
    assert r["landscape"] == [True, True, True, True]
    assert r["gum_after_background"] == 1
    assert "Hang up" in r["english"] and "挂断" in r["chinese"]
    assert r["chat_spoken"] == "请稍等，我查一下"


def test_expired_place_in_queue_joins_again_by_itself(env: BrowserEnv) -> None:
    async def scenario() -> tuple[str, str]:
        page = await env.new_page(saved={"token": "expired-token", "senior": True, "faceConsent": False})
        call_id = await queued(page)
        senior = await page.evaluate("document.body.classList.contains('senior')")
        await page.tap("#btn-leave")
        await env.close_page(page)
        return call_id, str(senior)

    call_id, senior = env.run(scenario())
    assert call_id and senior == "True"


def test_agent_lost_puts_the_customer_back_first_in_line(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with in_call(env) as (page, first):
            call_id = first.call_id
            await first.client.ws.close()  # the agent's browser dies
            out["requeued_as"] = await queued(page)
            out["notice"] = await page.text_content("#notice")
            out["position"] = await page.evaluate("document.body.dataset.position")
        async with Agent.online(env.base_url) as second:
            await second.take(page, call_id)
            out["frames"] = await second.peer.wait_frames(5)
            await second.hangup()
            await page.wait_for_selector("[data-screen=rating]")
        await env.close_page(page)
        out["call_id"] = call_id
        return out

    r = env.run(scenario(), timeout=120)
    assert r["requeued_as"] == r["call_id"] and r["position"] == "1" and r["notice"], r
    assert r["frames"] >= 5


def test_second_tab_takes_over_without_a_tug_of_war(env: BrowserEnv) -> None:
    async def scenario() -> tuple[str, str]:
        first = await env.new_page()
        call_id = await to_queue(first)
        saved = await first.evaluate("JSON.parse(sessionStorage.getItem('rc.customer'))")
        second = await env.new_page(saved=saved)
        again = await queued(second)
        await first.wait_for_selector("[data-screen=replaced]")
        await asyncio.sleep(1.5)  # the first tab must not reconnect and take the call back
        still = await second.evaluate("document.body.dataset.ws")
        await second.tap("#btn-leave")
        for page in (first, second):
            await env.close_page(page)
        return f"{call_id}={again}", still

    same, ws_state = env.run(scenario())
    left, right = same.split("=")
    assert left == right
    assert ws_state == "open"


#: The front camera takes 2.5 s to come back after the rear one was used (a slow phone).
SLOW_FRONT_CAMERA = """
(() => {
  const md = navigator.mediaDevices;
  const gum = md.getUserMedia.bind(md);
  let rearUsed = false;
  md.getUserMedia = async (c) => {
    if (JSON.stringify(c?.video ?? "").includes("environment")) rearUsed = true;
    else if (rearUsed) await new Promise((r) => setTimeout(r, 2500));
    return gum(c);
  };
})();
"""


def test_a_step_pushed_while_the_front_camera_returns_is_not_covered(env: BrowserEnv) -> None:
    """The ID still is sent, the agent pushes the confirmation at once, and the page is still switching
    back to the front camera: the confirmation stays on screen (no "sent" notice over it, no return to
    the call screen after it)."""

    async def scenario() -> dict[str, Any]:
        page = await env.new_page()
        await page.context.add_init_script(SLOW_FRONT_CAMERA)
        await page.reload()
        await page.wait_for_selector("[data-screen=entry]")
        call_id = await to_queue(page)
        async with Agent.online(env.base_url) as agent:
            await agent.take(page, call_id)
            await agent.push("show_id", "s1")
            await page.wait_for_selector("[data-screen=id-preview]", timeout=30000)
            await page.tap("#btn-id-send")
            await agent.step_result("s1")
            tid = await agent.pending_request()
            await agent.push("confirm", "s2", transaction_id=tid)
            await page.wait_for_selector("[data-screen=confirm]")
            await asyncio.sleep(5.0)  # the camera's 2.5 s, then the notice's 1.5 s, and more
            screen = await page.evaluate("document.querySelector('[data-screen]')?.dataset.screen")
            captured = await page.evaluate("document.body.dataset.captured")
            await page.tap("#btn-confirm")
            confirmed = await agent.step_result("s2")
            await agent.hangup()
        await env.close_page(page)
        return {"screen": screen, "captured": captured, "confirmed": confirmed.status}

    r = env.run(scenario())
    assert r["screen"] == "confirm" and r["captured"] == "id", r
    assert r["confirmed"] == "ok", r
