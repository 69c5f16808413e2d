"""The helper (家属) is recorded by the witness like the others: a third leg, two more tracks (issue 21)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from signaling import protocol as p
from signaling.helper_client import HelperClient
from signaling.peer import SyntheticVideo
from signaling.witness.client import WitnessSender
from tests.signaling.conftest import STAFF
from tests.signaling.test_witness import _decode, _recording_row
from web.recordings_api import RECORDINGS


@pytest.fixture(autouse=True)
def short_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTER_WITNESS_SEGMENT_S", "1")


async def test_the_recording_holds_three_parties(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff_http, \
            aiohttp.ClientSession() as http:
        agent = await HelperClient.staff(staff_http, base, "agent1", STAFF["agent1"])
        holder = await HelperClient.customer(http, base)
        assert isinstance(agent, HelperClient) and isinstance(holder, HelperClient)
        await holder.consent_to_recording()
        await agent.send(p.Presence(state="available"))
        await holder.send(p.Join())
        offer = await agent.expect(p.CallOffer)
        await agent.send(p.Accept(call_id=offer.call_id))
        await holder.expect(p.CallStarted)
        async with http.post(base + "/api/customer/helper/invite", headers={"X-Customer-Token": holder.token or ""}
                             ) as resp:
            code = (await resp.json())["code"]
        helper = await HelperClient.helper(http, base, code)
        senders = [WitnessSender(SyntheticVideo()) for _ in range(3)]
        try:
            await senders[0].connect(holder, offer.call_id)
            await senders[1].connect(agent, offer.call_id)
            await senders[2].connect(helper, offer.call_id)
            await asyncio.sleep(2.5)
            await holder.send(p.Hangup())
            await helper.expect(p.CallEnded)
        finally:
            for sender in senders:
                await sender.close()
            for client in (helper, holder, agent):
                await client.close()
    row = await _recording_row(app_client, offer.call_id)
    files = app_client.app[RECORDINGS].open(row["id"])
    hashes = {i: files.file_sha256(i) for i in files.segments()}
    packets, _ = await asyncio.to_thread(_decode, files, hashes)
    assert set(packets) == {"customer.video", "customer.audio", "agent.video", "agent.audio", "helper.video",
                            "helper.audio"}, packets
