"""Keep my place in Chromium: the customer keeps the place and closes the page; when an agent is free
the text with the link is in the outbox; the link brings them straight to the agent ahead of a later
arrival.  A customer who does not come back in time releases the place, audited."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import aiohttp

from counter.appkeys import DB, HOLDS
from counter.sms import SMS, BuiltinGateway
from signaling import protocol as p
from signaling.aio import SIGNALING
from signaling.client import SignalingClient
from tests.browser.harness import Agent, BrowserEnv, to_queue

PHONE = "13900139777"


async def keep_place_and_close(env: BrowserEnv) -> str:
    page = await env.new_page()
    call_id = await to_queue(page)
    await page.tap("#btn-keep-place")
    await page.fill("#keep-phone", "139 0013 9777")
    await page.tap("#btn-keep-submit")
    await page.wait_for_selector("[data-screen=kept]")
    await env.close_page(page)  # the customer closes the page
    for _ in range(100):  # until the server has seen the page go
        call = await env.app[SIGNALING].bus.get_call(call_id)
        if call is not None and call.disconnected_at is not None:
            break
        await asyncio.sleep(0.1)
    return call_id


async def link_texted(env: BrowserEnv, count: int) -> str:
    gateway = env.app[SMS].gateway
    assert isinstance(gateway, BuiltinGateway)
    texts = await asyncio.wait_for(gateway.wait_for(PHONE, count), 20)
    found = re.search(r"(/customer\?hold=[\w-]+)", texts[count - 1])
    assert found is not None, texts
    return found.group(1)


def test_keep_my_place_text_link_back_ahead_and_release(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        holds = env.app[HOLDS]
        before = holds.options
        # text only once an agent is free for them; a short window for the second customer
        holds.options = dataclasses.replace(before, notice_lead_s=0.0, return_s=60.0)
        db = env.app[DB]
        out: dict[str, Any] = {}
        try:
            async with Agent.online(env.base_url, "agent2", "agent2-demo") as agent, \
                    aiohttp.ClientSession() as http:
                kept = await keep_place_and_close(env)
                out["kept_status"] = await db.fetchval("SELECT status FROM waiting_holds WHERE call_id = $1", kept)
                later = await SignalingClient.customer(http, env.base_url)
                await later.send(p.Join())
                await later.expect(p.QueueStatus)
                await agent.client.send(p.Presence(state="available"))
                link = await link_texted(env, 1)
                out["outbox"] = await db.fetchval("SELECT COUNT(*) FROM sms_outbox WHERE msisdn = $1", PHONE)
                page = await env.new_page(saved={})
                await page.goto(env.base_url + link)  # the link from the text, in a new tab
                offer = await agent.client.expect(p.CallOffer, within=20)
                out["offered"] = offer.call_id == kept
                await agent.client.send(p.Accept(call_id=offer.call_id))
                await agent.client.expect(p.CallStarted)
                agent.call_id = kept
                await page.wait_for_selector("body[data-screen=call]")
                out["later_waiting"] = (await env.app[SIGNALING].bus.get_call(later.welcome.call_id
                                                                             if later.welcome else "")) is not None
                await agent.hangup()
                await agent.client.expect(p.CallEnded)
                await env.close_page(page)
                await agent.client.send(p.Presence(state="away"))
                await agent.client.expect(p.PresenceAck)

                await later.send(p.Hangup())
                await later.expect(p.CallEnded)

                # the second customer does not come back in time
                holds.options = dataclasses.replace(before, notice_lead_s=0.0, return_s=1.0)
                gone = await keep_place_and_close(env)
                later = await SignalingClient.customer(http, env.base_url)
                await later.send(p.Join())
                await later.expect(p.QueueStatus)
                await agent.client.send(p.Presence(state="available"))
                await link_texted(env, 2)
                offer = await agent.client.expect(p.CallOffer, within=20)  # the later arrival, once released
                out["after_release_offered"] = offer.call_id
                out["later_id"] = later.welcome.call_id if later.welcome else None
                out["released"] = await db.fetchval("SELECT status FROM waiting_holds WHERE call_id = $1", gone)
                out["audit"] = [r["action"] for r in await db.fetch(
                    "SELECT action FROM audit_entries WHERE session_id = $1 ORDER BY seq", gone)]
                out["returned"] = await db.fetchval("SELECT status FROM waiting_holds WHERE call_id = $1", kept)
                await agent.client.send(p.Decline(call_id=offer.call_id, reason="test over"))
                await later.send(p.Hangup())
        finally:
            holds.options = before
        return out

    r = env.run(scenario(), timeout=120)
    assert r["kept_status"] == "holding" and r["outbox"] == 1
    assert r["offered"], "the link brings the kept customer to the agent ahead of the later arrival"
    assert r["later_waiting"] and r["returned"] == "returned"
    assert r["released"] == "released" and r["after_release_offered"] == r["later_id"]
    assert {"waiting.place_kept", "waiting.place_notified", "waiting.place_released"} <= set(r["audit"]), r["audit"]
