"""Keep my place (virtual hold) over the protocol: kept while away, texted, back ahead of later
arrivals; not back in time: released, audited."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from counter.appkeys import DB
from counter.sms import SMS, BuiltinGateway
from signaling import protocol as p
from signaling.client import ClientError, SignalingClient
from tests.signaling.conftest import Connect

PHONE = "13800138123"


@pytest.fixture(autouse=True)
def short_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTER_HOLD_RETURN_S", "3")
    monkeypatch.setenv("COUNTER_HOLD_NOTICE_LEAD_S", "0")  # text only when an agent is free for them
    monkeypatch.setenv("COUNTER_HOLD_PUBLIC_URL", "https://counter.example")


async def raw(client: SignalingClient, kind: str, within: float = 10.0) -> str:
    """The next message of a type the protocol client does not parse (it reports it as client_parse)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        m = await client.recv(max(0.0, deadline - loop.time()))
        if isinstance(m, p.ErrorMsg) and m.code == "client_parse" and f'"type":"{kind}"' in m.reason:
            return m.reason
        if isinstance(m, p.ErrorMsg) and m.code != "client_parse":
            raise AssertionError(m)


async def texts(app_client: TestClient[Any, Any], count: int) -> list[str]:
    gateway = app_client.server.app[SMS].gateway
    assert isinstance(gateway, BuiltinGateway)
    return await asyncio.wait_for(gateway.wait_for(PHONE, count), 10)


async def audited(app_client: TestClient[Any, Any], action: str, call_id: str) -> int:
    db = app_client.server.app[DB]
    return int(await db.fetchval("SELECT COUNT(*) FROM audit_entries WHERE action = $1 AND session_id = $2",
                                 action, call_id))


async def test_kept_place_texted_and_back_ahead_of_later_arrivals(app_client: TestClient[Any, Any],
                                                                  connect: Connect, base_url: str) -> None:
    agent = await connect("agent1")  # away: nobody is served yet
    keeper = await connect()
    await keeper.send(p.Join())
    await keeper.expect(p.QueueStatus)
    await keeper.send({"type": "keep_place", "msisdn": "12345"})
    assert (await keeper.expect(p.ErrorMsg)).code == "invalid"
    await keeper.send({"type": "keep_place", "msisdn": PHONE})
    assert '"return_s":3.0' in await raw(keeper, "place_kept")
    call_id = keeper.welcome.call_id if keeper.welcome else None
    await keeper.close()  # the page is closed
    later = await connect()
    await later.send(p.Join())
    await later.expect(p.QueueStatus)
    await asyncio.sleep(0.5)  # past nothing but the ticks: the kept place is still there
    await agent.send(p.Presence(state="available"))
    await agent.expect(p.PresenceAck)
    (text,) = await texts(app_client, 1)
    link = re.search(r"https://counter\.example/customer\?hold=([\w-]+)", text)
    assert link is not None, text
    with pytest.raises(ClientError):  # the free agent waits for the kept place, not the later arrival
        await agent.expect(p.CallOffer, within=1.0)
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{base_url}/api/customer/hold/return", json={"code": link.group(1)})
        assert resp.status == 200
        back = await SignalingClient.connect(http, base_url, (await resp.json())["token"])
        try:
            assert back.welcome is not None and back.welcome.resumed and back.welcome.call_id == call_id
            offer = await agent.expect(p.CallOffer)
            assert offer.call_id == call_id
            await agent.send(p.Accept(call_id=offer.call_id))
            await back.expect(p.CallStarted)
            bad = await http.post(f"{base_url}/api/customer/hold/return", json={"code": "nope"})
            assert bad.status == 404
        finally:
            await back.close()
    assert await audited(app_client, "waiting.place_returned", str(call_id)) == 1
    assert await audited(app_client, "waiting.place_notified", str(call_id)) == 1


async def test_not_back_in_time_releases_the_place(app_client: TestClient[Any, Any], connect: Connect) -> None:
    agent = await connect("agent1")
    keeper = await connect()
    await keeper.send(p.Join())
    await keeper.expect(p.QueueStatus)
    await keeper.send({"type": "keep_place", "msisdn": PHONE})
    await raw(keeper, "place_kept")
    call_id = keeper.welcome.call_id if keeper.welcome else None
    await keeper.close()
    later = await connect()
    await later.send(p.Join())
    await later.expect(p.QueueStatus)
    await agent.send(p.Presence(state="available"))
    await agent.expect(p.PresenceAck)
    await texts(app_client, 1)
    offer = await agent.expect(p.CallOffer, within=15)  # released: the agent gets the later arrival
    assert offer.call_id != call_id
    db = app_client.server.app[DB]
    assert await db.fetchval("SELECT status FROM waiting_holds WHERE call_id = $1", call_id) == "released"
    assert await audited(app_client, "waiting.place_released", str(call_id)) == 1
