"""A scheduled call-back in Chromium: the customer books it from the queue; at its time it appears in
the agent's console; the agent starts it (the invitation is texted) and records the outcome."""

from __future__ import annotations

import time
from typing import Any

from counter.appkeys import DB
from tests.browser.harness import BrowserEnv, to_queue
from tests.browser.staff import staff_page

PHONE = "13600136222"


def test_customer_books_agent_starts_and_records(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        db = env.app[DB]
        page = await env.new_page()
        await to_queue(page)
        await page.tap("#btn-callback")
        await page.fill("#keep-phone", PHONE)
        await page.tap("#btn-callback-30")
        await page.wait_for_selector("[data-screen=callback-booked]")
        out: dict[str, Any] = {"booked_text": await page.text_content("section[data-screen=callback-booked]")}
        await env.close_page(page)
        row = await db.fetchrow("SELECT id, preferred_at FROM waiting_callbacks WHERE msisdn = $1", PHONE)
        out["ahead_s"] = float(row["preferred_at"]) - time.time()
        await db.execute("UPDATE waiting_callbacks SET preferred_at = $2 WHERE id = $1", row["id"], time.time())
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        item = f"[data-callback='{row['id']}']"
        await agent.wait_for_selector(f"{item}[data-status=scheduled] .callback-start")  # its time has come
        await agent.click(f"{item} .callback-start")
        await agent.click(f"{item}[data-status=started] [data-outcome=resolved]")
        await agent.wait_for_selector(item, state="detached")
        out["row"] = dict(await db.fetchrow("SELECT status, outcome, agent FROM waiting_callbacks WHERE id = $1",
                                            row["id"]))
        out["texts"] = await db.fetchval("SELECT COUNT(*) FROM sms_outbox WHERE msisdn = $1", PHONE)
        await agent.context.close()
        env.contexts.remove(agent.context)
        return out

    r = env.run(scenario())
    assert "已为您预约回呼" in r["booked_text"] and 1700 < r["ahead_s"] < 1810, r
    assert r["row"] == {"status": "done", "outcome": "resolved", "agent": "agent1"}
    assert r["texts"] == 1  # the invitation
