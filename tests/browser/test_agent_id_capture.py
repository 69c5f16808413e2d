"""The agent console's ID capture (Alt+I) in Chromium, against the customer's page: it reads the ID
still the customer's page uploaded (named by the sha256 in the step result), not a live frame, which
may show the card or, once the page has turned back to the front camera, the face."""

from __future__ import annotations

import json
from typing import Any

from counter.audit import AUDIT
from tests.browser.harness import BrowserEnv, to_queue
from tests.browser.staff import answer, staff_page

SARAHS_LINE = "13500135000"  # real-name photo sarah_0; the fake camera films sarah_2


def test_id_capture_reads_the_customers_uploaded_still(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        assert env.app is not None
        out: dict[str, Any] = {"requests": []}
        customer = await env.new_page()
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        agent.on("request", lambda r: out["requests"].append(r.post_data) if r.url.endswith("/identity/id-card")
                 else None)
        await to_queue(customer)
        await answer(agent, customer)
        await agent.wait_for_selector("body[data-remote-video]")
        call_id: str = await agent.evaluate("document.body.dataset.call")
        await agent.fill("#claim-msisdn", SARAHS_LINE)
        await agent.click("#btn-claim")
        await agent.wait_for_selector("#account .badge")
        await agent.keyboard.press("Alt+F")  # the ID portrait is compared with the face this check matched
        await customer.wait_for_selector("body[data-captured=face]", timeout=60000)
        face = await agent.wait_for_selector("#checks .check[data-kind=face]", timeout=60000)
        out["face_ok"] = await face.get_attribute("data-ok")
        await agent.keyboard.press("Alt+I")
        await customer.wait_for_selector("[data-screen=id-preview]", timeout=60000)
        await customer.tap("#btn-id-send")
        card = await agent.wait_for_selector("#checks .check[data-kind=id_card]", timeout=60000)
        out["card_text"] = await card.text_content()
        stills = await env.app[AUDIT].search(session_id=call_id, action="identity.customer_still")
        out["stills"] = [(e["entry"]["details"].get("kind"), e["entry"]["outcome"], e["entry"]["evidence"][0])
                         for e in stills]
        await env.close_page(customer)
        await env.close_page(agent)
        return out

    r = env.run(scenario(), timeout=180)
    assert r["face_ok"] == "true"
    # Whatever the card check says, it says it in words (zh-CN and English), never as reason codes.
    codes = ("number_mismatch", "number_invalid", "number_missing", "no_portrait", "portrait_mismatch",
             "check_digit", "attest_first", "document_not_accepted", "id_card ")
    assert not [c for c in codes if c in r["card_text"]], r["card_text"]
    assert "身份证" in r["card_text"] and "ID card" in r["card_text"], r["card_text"]
    [(_, outcome, sha)] = [s for s in r["stills"] if s[0] == "id"]
    assert outcome == "ok", r["stills"]
    assert [json.loads(body) for body in r["requests"]] == [{"source": "customer_still", "sha256": sha}]
