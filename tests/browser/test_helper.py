"""Three browsers in one call (issue 21): the holder invites a helper (家属) by link and QR code, the helper
joins from their own browser, the agent's console sees who is who; all three see and hear each other.

Measured, not assumed: every page's peer connections report decoded video frames and received audio
packets from both others; the holder's consent is in the audit log; a face check on the helper's camera
and a confirmation with the helper's token are refused while the holder's succeeds; the recording holds
the helper's tracks; a used or an expired link is refused with the page's own words.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from counter.appkeys import DB, HELPERS
from counter.audit import AUDIT
from signaling.aio import SIGNALING
from signaling.bus import LANES
from tests.browser.harness import ANDROID_UA, VIEWPORT, BrowserEnv, screenshot, to_queue
from tests.browser.staff import answer, staff_page

#: Every RTCPeerConnection a page makes, for getStats (installed before the page's scripts).
KEEP_PCS = """
(() => {
  window.__pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""

#: Per open peer connection: decoded video frames and received audio packets (witness legs receive none).
MEDIA_IN = """
async () => {
  const out = [];
  for (const pc of window.__pcs) {
    if (pc.connectionState !== "connected") continue;
    let frames = 0, audio = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded || 0;
      if (r.type === "inbound-rtp" && r.kind === "audio") audio += r.packetsReceived || 0;
    });
    if (frames || audio) out.push([frames, audio]);
  }
  return out;
}
"""

STAFF_FETCH = """
async ([path, body]) => {
  const me = await (await fetch("/api/auth/me")).json();
  const resp = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json",
    "X-CSRF-Token": me.csrf_token }, body: JSON.stringify(body) });
  return [resp.status, await resp.json()];
}
"""

CUSTOMER_FETCH = """
async ([path, token, body]) => {
  const resp = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json",
    "X-Customer-Token": token }, body: JSON.stringify(body) });
  return [resp.status, await resp.json()];
}
"""


async def _page(env: BrowserEnv) -> Any:
    ctx = await env.browser.new_context(viewport=VIEWPORT, is_mobile=True, has_touch=True, locale="zh-CN",
                                        user_agent=ANDROID_UA, permissions=["camera", "microphone"])
    env.contexts.append(ctx)
    await ctx.add_init_script(KEEP_PCS)
    page = await ctx.new_page()
    page.set_default_timeout(20000)
    return page


async def _both_ways(page: Any, within: float = 40.0) -> list[list[int]]:
    """Wait until two peer connections of the page receive video frames and audio packets."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        media: list[list[int]] = await page.evaluate(MEDIA_IN)
        if sum(1 for frames, audio in media if frames >= 10 and audio >= 10) >= 2:
            return media
        if asyncio.get_running_loop().time() > deadline:
            return media
        await asyncio.sleep(0.5)


def test_holder_helper_and_agent_in_one_call(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        holder = await _page(env)
        await holder.goto(env.base_url + "/customer")
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent", init_script=KEEP_PCS)
        call_id = await to_queue(holder)
        await answer(agent, holder)
        # The holder invites: a QR code shown large, and the link.
        await holder.tap("#btn-helper")
        await holder.wait_for_selector("[data-screen=helper_invite] #helper-qr svg")
        out["qr_width"] = await holder.evaluate(
            "document.querySelector('#helper-qr svg').getBoundingClientRect().width")
        await screenshot(holder, "helper-invite")
        url = (await holder.text_content("#helper-link") or "").strip()
        await holder.tap("#btn-helper-done")
        # The helper opens the link in their own browser and says who they are.
        helper = await _page(env)
        joined: list[Any] = []
        helper.on("response", lambda r: joined.append(r) if r.url.endswith("/api/helper/join") else None)
        await helper.goto(url)
        await helper.wait_for_selector("[data-screen=intro]")
        await helper.fill("#helper-name", "王小明")
        await helper.select_option("#helper-relation", "child")
        await helper.tap("#btn-join")
        helper_token = (await joined[0].json())["token"]
        # The holder is asked on video, and agrees.
        await holder.wait_for_selector("[data-screen=helper_consent]")
        out["consent_text"] = await holder.text_content("#screen")
        out["stage_shown"] = await holder.is_visible("#stage")
        await screenshot(holder, "helper-consent")
        await holder.tap("#btn-helper-yes")
        await agent.wait_for_selector("body[data-helper=agreed]")
        await helper.wait_for_selector("body[data-consent=agreed]")
        # The agent may suggest a helper too: the holder's screen asks, and the holder decides.
        await agent.click("#btn-suggest-helper")
        await holder.wait_for_selector("[data-screen=helper_suggest]")
        await screenshot(holder, "helper-suggest")
        await holder.tap("#btn-suggest-no")
        await holder.wait_for_selector("[data-screen=call]")
        out["agent_label"] = await agent.text_content("#helper-label")
        out["holder_label"] = await holder.text_content("#helper-label")
        out["helper_tiles"] = [await helper.text_content(f"#{x}-label") for x in ("holder", "agent", "self")]
        # All three see and hear both others.
        out["media"] = {name: await _both_ways(page) for name, page in
                        (("holder", holder), ("helper", helper), ("agent", agent))}
        entries = await env.app[AUDIT].search(action="helper.consent", session_id=call_id)
        out["consent"] = [(e["entry"]["outcome"], e["entry"]["details"], json.dumps(e["entry"], ensure_ascii=False))
                          for e in entries]
        # Identity stays the holder's: no face check on the helper's camera; only the holder confirms.
        out["face_helper"] = await agent.evaluate(
            STAFF_FETCH, [f"/api/counter/sessions/{call_id}/identity/face", {"source": "helper"}])
        sid = f"/api/counter/sessions/{call_id}"
        await agent.evaluate(STAFF_FETCH, [f"{sid}/claim", {"msisdn": "13800138000"}])
        await agent.evaluate(STAFF_FETCH, [f"{sid}/verify-password", {"password": "246810"}])
        _, tx = await agent.evaluate(STAFF_FETCH, [f"{sid}/transactions", {
            "code": "balance.query", "inputs": {}, "idempotency_key": "helper-1"}])
        confirm = f"/api/customer/counter/transactions/{tx['id']}/confirm"
        out["helper_confirm"] = await helper.evaluate(CUSTOMER_FETCH, [confirm, helper_token, {"accept": True}])
        holder_token = json.loads(await holder.evaluate("sessionStorage.getItem('rc.customer')"))["token"]
        out["holder_confirm"] = await holder.evaluate(CUSTOMER_FETCH, [confirm, holder_token, {"accept": True}])
        await screenshot(helper, "helper-call")
        # The call ends: the helper is told; the recording holds the helper's tracks.
        await agent.keyboard.press("Alt+H")
        await agent.keyboard.press("Enter")
        await helper.wait_for_selector("[data-screen=ended]")
        tracks: set[str] = set()
        for _ in range(100):
            rows = await env.app[DB].fetch(
                "SELECT s.tracks, r.ended_at FROM recording_segments s JOIN recordings r ON r.id = s.recording_id"
                " WHERE r.call_id = $1", call_id)
            tracks = {t for row in rows for t in json.loads(row["tracks"])}
            if rows and rows[0]["ended_at"] is not None and "helper.video" in tracks:
                break
            await asyncio.sleep(0.2)
        out["tracks"] = sorted(tracks)
        # The link was single-use; an expired one is refused too, each in the page's own words.
        again = await _page(env)
        await again.goto(url)
        await again.wait_for_selector("[data-screen=refused]")
        out["reused"] = (await again.evaluate("document.body.dataset.refused"), await again.text_content("h1"))
        stale = await env.app[HELPERS].store.invite(call_id, "test", ttl_s=-1.0)
        expired = await _page(env)
        await expired.goto(f"{env.base_url}/helper#code={stale.code}")
        await expired.wait_for_selector("[data-screen=refused]")
        out["expired"] = (await expired.evaluate("document.body.dataset.refused"), await expired.text_content("h1"))
        for page in (holder, helper, agent, again, expired):
            await env.close_page(page)
        return out

    r = env.run(scenario(), timeout=240)
    assert r["qr_width"] >= 300, r["qr_width"]
    assert "王小明" in r["consent_text"] and "子女" in r["consent_text"] and r["stage_shown"], r["consent_text"]
    assert "家属" in r["agent_label"] and "王小明" in r["agent_label"] and "本人已同意" in r["agent_label"]
    assert r["holder_label"] == "家属" and r["helper_tiles"] == ["本人", "营业员", "家属"]
    for name, media in r["media"].items():
        assert sum(1 for frames, audio in media if frames >= 10 and audio >= 10) >= 2, (name, media)
    [(outcome, details, body)] = r["consent"]
    assert outcome == "ok" and details == {"relation": "child"} and "王小明" not in body
    assert r["face_helper"][0] == 409 and r["face_helper"][1]["error"]["code"] == "not_holder", r["face_helper"]
    assert r["helper_confirm"][0] == 403 and r["helper_confirm"][1]["error"]["code"] == "helper_not_holder"
    assert r["holder_confirm"][0] == 200 and r["holder_confirm"][1]["status"] == "done", r["holder_confirm"]
    assert {"customer.video", "agent.video", "helper.video", "helper.audio"} <= set(r["tracks"]), r["tracks"]
    assert r["reused"] == ("invite_used", "这个邀请链接已经用过了，每个链接只能用一次。请让家人重新发一个。")
    assert r["expired"] == ("invite_expired", "这个邀请链接已过期。请让家人重新发一个。")


def test_a_helper_starts_and_the_holder_joins_from_their_own_phone(env: BrowserEnv) -> None:
    """家属先来: the helper page starts a call and shows the holder's one-time link large; the holder's own
    phone opens it (their own token), queues, and is asked on screen; the helper page then says who they are."""
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        helper = await _page(env)
        await helper.goto(env.base_url + "/helper")
        await helper.wait_for_selector("[data-screen=start]")
        await screenshot(helper, "helper-start")
        await helper.tap("#btn-start")
        await helper.wait_for_selector("[data-screen=intro]")
        await helper.fill("#helper-name", "王小明")
        await helper.select_option("#helper-relation", "child")
        await helper.tap("#btn-join")
        await helper.wait_for_selector("[data-screen=holder_link] #holder-qr svg")
        out["qr_width"] = await helper.evaluate(
            "document.querySelector('#holder-qr svg').getBoundingClientRect().width")
        out["here_hint"] = await helper.text_content("#holder-here-hint")
        await screenshot(helper, "helper-holder-link")
        url = (await helper.text_content("#holder-link") or "").strip()
        holder = await _page(env)
        await holder.goto(url)
        for button in ("#btn-video", "#btn-consent", "#btn-face-yes"):  # as any customer, to the queue
            await holder.tap(button)
        # Queued with the helper waiting there: asked at once, and the queue's updates leave the question up.
        await holder.wait_for_selector("[data-screen=helper_consent]")
        call_id = await holder.evaluate("document.body.dataset.call")
        out["consent_text"] = await holder.text_content("#screen")
        await holder.tap("#btn-helper-yes")
        await helper.wait_for_selector("body[data-consent=agreed]")
        out["helper_status"] = await helper.text_content("#helper-status")
        out["call_id"] = call_id
        out["helper_call"] = await helper.evaluate("document.body.dataset.ws")
        again = await _page(env)
        await again.goto(url)
        await again.wait_for_selector("[data-screen=holder-refused]")
        out["reused"] = await again.text_content("h1")
        # The holder leaves the queue: no call is left waiting for the next test's agent.
        await holder.wait_for_selector("#btn-leave")
        await holder.tap("#btn-leave")
        bus = env.app[SIGNALING].bus

        async def queued() -> bool:
            ids = [c for lane in LANES for c, _ in await bus.lane(lane)]
            return call_id in ids

        for _ in range(100):
            if not await queued():
                break
            await asyncio.sleep(0.1)
        out["left_queue"] = not await queued()
        for page in (holder, helper, again):
            await env.close_page(page)
        return out

    r = env.run(scenario(), timeout=120)
    assert r["qr_width"] >= 300, r["qr_width"]
    assert "人脸核验只认本人" in r["here_hint"], r["here_hint"]
    assert "王小明" in r["consent_text"] and "子女" in r["consent_text"], r["consent_text"]
    assert "本人已同意" in r["helper_status"], r["helper_status"]
    assert r["reused"] == "这个邀请链接已经用过了，每个链接只能用一次。请让家人重新发一个。", r["reused"]
    assert r["left_queue"], "the holder's call must leave the queue (the next test's agent would be offered it)"
