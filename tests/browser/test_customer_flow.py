"""The customer's page in a real Chromium against the real app: entry to rating."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from counter.appkeys import SESSIONS, WITNESS
from counter.proofs import ProofKind
from counter.sessions import Level
from signaling import protocol as p
from signaling.aio import SIGNALING
from tests.browser.harness import (
    BrowserEnv,
    as_json,
    in_call,
    keypad,
    queued,
    screenshot,
    send_password,
    spoken,
)
from tests.counter.txkit import raise_on_proofs

SARAHS_LINE = "13500135000"  # real-name photo sarah_0; the fake camera films sarah_2
MISLEADING = "为您查询话费余额，不做任何更改"  # what an insider's console might say instead


async def shown_position(env: BrowserEnv, page: Any, call_id: str) -> tuple[str, str]:
    """The page's queue position next to the server's (other tests' customers may still be queued)."""
    shown, expected = "", "?"
    for _ in range(40):
        snap = await env.app[SIGNALING].snapshot()
        lanes: Any = snap["lanes"]
        pos = next((r["position"] for rows in lanes.values() for r in rows if r["call_id"] == call_id), 0)
        expected = "下一位就是您" if pos == 1 else f"前面还有 {pos - 1} 位"
        shown = await page.text_content("#queue-position") or ""
        if expected in shown:
            break
        await asyncio.sleep(0.25)
    return shown, expected


def test_entry_consent_queue(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        page = await env.new_page()
        await screenshot(page, "entry")
        gum_before = await page.evaluate("window.__gum.length")
        await page.tap("#btn-video")
        await page.wait_for_selector("[data-screen=consent]")
        await screenshot(page, "consent")
        await page.tap("#btn-consent")
        await page.wait_for_selector("[data-screen=face-consent]")
        gum_after_consent = await page.evaluate("window.__gum.length")
        await screenshot(page, "face-consent")
        await page.tap("#btn-face-yes")
        call_id = await queued(page)
        await screenshot(page, "waiting")
        result = {
            "gum_before": gum_before,
            "gum_after_consent": gum_after_consent,
            "gum": await page.evaluate("window.__gum"),
            "bytes": await page.evaluate("window.__bytesAtGum"),
            "spoken": await spoken(page),
            "position": await shown_position(env, page, call_id),
            "csp": await page.evaluate("window.__csp"),
            "queued": await env.app[SIGNALING].bus.get_call(call_id) is not None,
        }
        await page.tap("#btn-leave")
        await page.wait_for_selector("[data-screen=result]")
        await asyncio.sleep(0.2)
        result["left"] = await env.app[SIGNALING].bus.get_call(call_id) is None
        await env.close_page(page)
        return result

    r = env.run(scenario())
    assert r["gum_before"] == 0 and r["gum_after_consent"] == 0, "the camera must not start before consent"
    assert r["gum"][0]["video"]["facingMode"] == "user"
    assert 0 < r["bytes"] < 300_000, r["bytes"]
    assert r["csp"] == [], r["csp"]
    shown, expected = r["position"]
    assert expected in shown, (shown, expected)
    assert r["queued"] and r["left"], "leaving the queue takes the call out of it"
    assert any("排队" in s or "下一位" in s for s in r["spoken"]), r["spoken"]
    assert any("录像" in s for s in r["spoken"]), r["spoken"]


def test_call_steps_captures_confirmation_rating(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with in_call(env) as (page, agent):
            call_id = agent.call_id
            out["agent_frames"] = await agent.peer.wait_frames(5)
            await page.wait_for_function("() => document.getElementById('agent-video').videoWidth > 0")
            await page.wait_for_selector("body[data-recording=on] #recording")
            out["witness_legs"] = sorted(env.app[WITNESS].calls[call_id].legs)
            await screenshot(page, "call")

            await agent.push("info", "s1", text="请看一下路由器背面的灯", press="按一下 RESET 键")
            await page.wait_for_selector("[data-screen=step] #step-press")
            out["step_spoken"] = await spoken(page)
            out["step_highlight"] = await page.eval_on_selector(
                "#btn-step-done", "b => b.classList.contains('highlight')"
            )
            await screenshot(page, "step")
            await page.tap("#btn-step-repeat")
            out["repeat_spoken"] = await spoken(page)
            await page.tap("#btn-step-done")
            out["s1"] = await agent.step_result("s1")
            await page.wait_for_selector("[data-screen=call]")

            await agent.push("face_capture", "s2")
            await page.wait_for_selector("[data-screen=face-capture]")
            await screenshot(page, "face-capture")
            out["s2"] = await agent.step_result("s2")

            await agent.push("liveness", "l1", sequence=["blink", "nod"], deadline=time.time() + 6)
            await page.wait_for_selector("[data-screen=liveness]")
            await page.wait_for_selector("body[data-live-action=blink]")
            await screenshot(page, "liveness")
            out["l1"] = await agent.step_result("l1", within=20)
            out["live_spoken"] = await spoken(page)
            await page.wait_for_selector("[data-screen=call]")

            # The ID still's portrait is compared with the face that matched in the agent's face check
            # (the live video shows the card by then): a real check on the witness's frame first.
            await agent.api(f"/api/counter/sessions/{call_id}/claim", {"msisdn": SARAHS_LINE})
            out["face_check"] = await agent.api(f"/api/counter/sessions/{call_id}/identity/face", {"source": "live"})
            await agent.push("show_id", "s3")
            await page.wait_for_selector("[data-screen=id-capture]")
            await page.wait_for_function("() => document.getElementById('id-video')?.readyState >= 2")
            await screenshot(page, "id-capture")
            await page.wait_for_selector("[data-screen=id-preview]", timeout=30000)
            await screenshot(page, "id-preview")
            out["gum"] = await page.evaluate("window.__gum")
            await page.tap("#btn-id-send")
            out["s3"] = await agent.step_result("s3")

            # A state change through the real counter API, confirmed on the customer's own screen.
            opened = await agent.api("/api/counter/sessions", {"call_id": call_id})
            await agent.api(f"/api/counter/sessions/{call_id}/claim", {"msisdn": "13800138000"})
            await env.app[SESSIONS].set_face_consent(call_id, True)
            await raise_on_proofs(env.app[SESSIONS], call_id, Level.A2, "face", ProofKind.FACE_MATCH,
                                  ProofKind.LIVENESS)
            tx = await agent.api(f"/api/counter/sessions/{call_id}/transactions",
                                 {"code": "roaming.set", "inputs": {"enabled": True}, "idempotency_key": "r1"})
            del opened
            # The agent's words never reach the confirmation screen: a confirm step with text is
            # refused by the server, and one for a request not waiting in this customer's session
            # shows nothing; the screen shows the server's words for the customer's own request.
            await agent.client.send({"type": "push_step", "call_id": call_id, "step_id": "lie", "step": "confirm",
                                     "params": {"transaction_id": tx["id"], "title_zh": "余额查询",
                                                "what_zh": MISLEADING}})
            out["lie"] = await agent.client.expect(p.ErrorMsg)
            await agent.push("confirm", "s-other", transaction_id=tx["id"] + 1000)
            out["other"] = await agent.step_result("s-other")
            out["screen_after_other"] = await page.evaluate("document.body.dataset.screen")
            await agent.push("confirm", "s4", transaction_id=tx["id"])
            await page.wait_for_selector("[data-screen=confirm]")
            await screenshot(page, "confirm")
            out["confirm_text"] = await page.text_content("#screen")
            left = await page.text_content(".countdown-text")
            await page.tap(".more-time")
            out["more_time"] = (left, await page.text_content(".countdown-text"))
            await page.tap("#btn-confirm")
            out["s4"] = await agent.step_result("s4")
            out["tx"] = await agent.api(f"/api/counter/sessions/{call_id}")
            await page.wait_for_selector("[data-screen=tx-result]")
            out["tx_result"] = await page.text_content("#screen")
            await page.tap("#btn-result-done")

            await page.wait_for_selector("[data-screen=call]")
            await keypad(page, "1380")
            await screenshot(page, "keypad")
            out["password"] = await send_password(page)  # checked by the server, never relayed as chat
            await page.tap("#btn-chat-close")

            await agent.hangup()
            await page.wait_for_selector("[data-screen=rating]")
            await screenshot(page, "rating")
            await page.tap("#rate-5")
            await page.wait_for_selector("[data-screen=result]")
            await screenshot(page, "result")
            out["result"] = await page.text_content("#results")
            out["rating"] = (await env.app[SESSIONS].get(call_id)).rating
        await env.close_page(page)
        return out

    r = env.run(scenario(), timeout=150)
    assert r["agent_frames"] >= 5
    assert r["step_highlight"]
    assert any("RESET" in s for s in r["step_spoken"])
    assert len(r["repeat_spoken"]) > len(r["step_spoken"]) and "RESET" in r["repeat_spoken"][-1]
    assert r["s1"].status == "ok"
    face = as_json(r["s2"].value)
    assert r["s2"].status == "ok" and face["kind"] == "face" and len(face["sha256"]) == 64
    rear = [g for g in r["gum"] if isinstance(g.get("video"), dict) and "environment" in json.dumps(g["video"])]
    assert rear, r["gum"]
    assert r["l1"].status == "ok" and as_json(r["l1"].value) == {"actions": 2}
    assert "眨眨眼睛" in r["live_spoken"] and "点点头" in r["live_spoken"]
    assert r["s3"].status == "ok" and as_json(r["s3"].value)["kind"] == "id"
    assert face["uploaded"] is True, face
    assert r["face_check"]["result"]["decision"] == "match", r["face_check"]["result"]
    assert as_json(r["s3"].value)["uploaded"] is True, r["s3"].value
    assert "customer" in r["witness_legs"]
    assert r["lie"].code == "invalid" and "transaction_id" in r["lie"].reason, r["lie"]
    assert r["other"].status == "cancelled" and as_json(r["other"].value)["error"] == "not_pending", r["other"]
    assert r["screen_after_other"] != "confirm", "nothing to confirm for a request not waiting in this session"
    assert "国际漫游" in r["confirm_text"] and "138****8000" in r["confirm_text"], r["confirm_text"]
    assert "开通" in r["confirm_text"] and MISLEADING not in r["confirm_text"], r["confirm_text"]
    assert "国际漫游已开通" in r["tx_result"], r["tx_result"]
    assert r["s4"].status == "ok" and as_json(r["s4"].value)["status"] == "done"
    assert [t["status"] for t in r["tx"]["transactions"]] == ["done"], r["tx"]
    assert r["rating"] == 5
    assert r["password"] == "wrong", r["password"]
    before, after = (int("".join(c for c in text if c.isdigit())) for text in r["more_time"])
    assert after >= before + 55, r["more_time"]
    assert "国际漫游" in r["result"] and "开通" in r["result"], r["result"]
