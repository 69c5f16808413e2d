"""Recording truth on screen: with the customer's media not reaching the witness, neither screen shows
the recording badge (录像中) and the agent console warns, although the witness answered both legs."""

from __future__ import annotations

import asyncio
from typing import Any

from counter.appkeys import WITNESS
from tests.browser.harness import BrowserEnv, to_queue
from tests.browser.staff import answer, staff_page

#: The phone's leg to the witness never completes (the answer is dropped: as if the path were blocked).
BLOCK_WITNESS = """
(() => {
  const set = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (desc) {
    if (desc && desc.type === "answer") return Promise.resolve();  // only the witness leg gets answers here
    return set.apply(this, arguments);
  };
})();
"""


def test_no_badge_and_a_warning_while_the_witness_gets_no_media(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        customer = await env.new_page()
        await customer.context.add_init_script(BLOCK_WITNESS)
        await customer.reload()
        await customer.wait_for_selector("[data-screen=entry]")
        await to_queue(customer)
        await answer(agent, customer)
        await customer.wait_for_selector("body[data-rtc=connected]")
        await agent.wait_for_selector("body[data-witness=connected]")  # the console's own leg is up
        call_id: str = await agent.evaluate("document.body.dataset.call")
        witness = env.app[WITNESS]
        for _ in range(200):  # bounded: until the witness has answered the phone's leg too
            if call_id in witness.calls and "customer" in witness.calls[call_id].legs:
                break
            await asyncio.sleep(0.05)
        await agent.wait_for_selector("#recording-warn:not([hidden])")
        out["state"] = str(witness.calls[call_id].state)
        out["warning"] = await agent.text_content("#recording-warn")
        out["agent_badge"] = await agent.is_hidden("#recording-state")
        out["customer_badge"] = await customer.is_hidden("#recording")
        out["customer_recording"] = await customer.evaluate("document.body.dataset.recording")
        await agent.click("#btn-hangup")
        await env.close_all()
        return out

    r = env.run(scenario(), timeout=120)
    assert r["state"] == "waiting_media"
    assert r["agent_badge"] and r["customer_badge"], "no 录像中 while no media reaches the witness"
    assert r["customer_recording"] != "on"
    assert "尚未录像" in r["warning"] and "Not recorded" in r["warning"]
