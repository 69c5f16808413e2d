"""Queue, routing and relay through the real app over real WebSockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from signaling import protocol as p
from signaling.aio import SIGNALING
from signaling.client import ClientError, SignalingClient
from tests.conftest import login
from tests.signaling.conftest import Connect, available


async def agent2_offered_first(
    connect: Connect,
) -> tuple[SignalingClient, SignalingClient, SignalingClient, p.CallOffer]:
    """agent2 available, then agent1 (agent2 is the longest idle), then a customer joins: agent2,
    agent1, the customer and agent2's offer."""
    agent2 = await connect("agent2")
    await available(agent2)
    agent1 = await connect("agent1")
    await available(agent1)
    customer = await connect()
    await customer.send(p.Join())
    return agent2, agent1, customer, await agent2.expect(p.CallOffer)


async def put_through(agent: SignalingClient, customer: SignalingClient) -> str:
    offer = await agent.expect(p.CallOffer)
    await agent.send(p.Accept(call_id=offer.call_id))
    await agent.expect(p.CallStarted)
    await customer.expect(p.CallStarted)
    return offer.call_id


async def connected(connect: Connect, user: str = "agent1") -> tuple[SignalingClient, SignalingClient, str]:
    """``user`` available and put through to a new customer: the agent, the customer and the call id."""
    agent = await connect(user)
    await available(agent)
    customer = await connect()
    await customer.send(p.Join())
    return agent, customer, await put_through(agent, customer)


async def test_customer_is_queued_offered_connected_and_relayed(connect: Connect) -> None:
    customer = await connect()
    assert customer.welcome is not None and customer.welcome.role == "customer"
    await customer.send(p.Join(claimed_phone="13800138000"))
    status = await customer.expect(p.QueueStatus)
    assert (status.lane, status.position) == ("general", 1)

    agent = await connect("agent1")
    await available(agent)
    offer = await agent.expect(p.CallOffer)
    assert offer.call_id == customer.welcome.call_id
    assert offer.claimed_phone == "13800138000"
    await agent.send(p.Accept(call_id=offer.call_id))
    started = await customer.expect(p.CallStarted)
    assert started.peer == "agent:agent1" and started.offerer == "agent"
    await agent.expect(p.CallStarted, peer=f"customer:{offer.call_id}")

    await customer.send(p.Chat(call_id=offer.call_id, text="我的号码 13800138000"))
    chat = await agent.expect(p.Chat)
    assert chat.text == "我的号码 13800138000" and chat.sender == f"customer:{offer.call_id}"
    await agent.send(p.PushStep(call_id=offer.call_id, step_id="s1", step="show_id", params={"side": "front"}))
    step = await customer.expect(p.PushStep)
    assert step.params == {"side": "front"}
    await customer.send(p.StepResult(call_id=offer.call_id, step_id="s1", status="ok"))
    assert (await agent.expect(p.StepResult)).status == "ok"
    await customer.send(p.Sdp(call_id=offer.call_id, kind="answer", sdp="v=0\r\n"))
    assert (await agent.expect(p.Sdp)).kind == "answer"

    await customer.send(p.PushStep(call_id=offer.call_id, step_id="s2", step="confirm", params={"transaction_id": 1}))
    refused = await customer.expect(p.ErrorMsg)
    assert refused.code == "forbidden"

    await agent.send(p.Hangup(call_id=offer.call_id))
    ended = await customer.expect(p.CallEnded)
    assert ended.reason == "hangup" and ended.by == "agent:agent1"
    await agent.expect(p.CallEnded)


async def test_care_lane_first_and_only_to_care_agents(connect: Connect) -> None:
    general = await connect()
    await general.send(p.Join())
    await general.expect(p.QueueStatus)
    senior = await connect(care=True)
    await senior.send(p.Join(care=True))
    status = await senior.expect(p.QueueStatus)
    assert (status.lane, status.position) == ("care", 1)
    aged = await connect()
    await aged.send(p.Join(age=71))
    assert (await aged.expect(p.QueueStatus)).lane == "care"

    agent2 = await connect("agent2")  # general only: never offered a care call
    await available(agent2)
    offer2 = await agent2.expect(p.CallOffer)
    assert offer2.call_id == general.welcome.call_id if general.welcome else False
    agent1 = await connect("agent1")  # care + general: the care lane first, FIFO
    await available(agent1)
    offer1 = await agent1.expect(p.CallOffer)
    assert senior.welcome is not None and offer1.call_id == senior.welcome.call_id
    assert offer1.lane == "care"


async def test_longest_idle_agent_gets_the_call(connect: Connect) -> None:
    _, _, customer, offer = await agent2_offered_first(connect)
    assert customer.welcome is not None and offer.call_id == customer.welcome.call_id


async def test_unanswered_offer_goes_to_the_next_agent(connect: Connect) -> None:
    agent2, agent1, customer, first = await agent2_offered_first(connect)
    assert (await agent2.expect(p.OfferTimeout)).call_id == first.call_id
    assert (await agent2.expect(p.PresenceAck)).state == "away"
    second = await agent1.expect(p.CallOffer)
    assert second.call_id == first.call_id
    await agent2.send(p.Accept(call_id=first.call_id))
    assert (await agent2.expect(p.ErrorMsg)).code == "offer_gone"
    await agent1.send(p.Accept(call_id=first.call_id))
    await customer.expect(p.CallStarted)


async def test_declined_call_goes_to_another_agent(connect: Connect) -> None:
    agent2, agent1, _, offer = await agent2_offered_first(connect)
    await agent2.send(p.Decline(call_id=offer.call_id))
    assert (await agent1.expect(p.CallOffer)).call_id == offer.call_id


async def test_agent_drop_puts_customer_back_at_the_head(connect: Connect) -> None:
    agent1, first, call_id = await connected(connect)
    later = await connect()
    await later.send(p.Join())
    await later.expect(p.QueueStatus)

    await agent1.close()
    notice = await first.expect(p.Notice)
    assert notice.code == "agent_lost"
    status = await first.expect(p.QueueStatus)
    assert (status.call_id, status.position) == (call_id, 1)
    # a status sent before the requeue (its periodic refresh) may still be on the way: the next that
    # counts is the one with the customer back at the head
    await later.expect(p.QueueStatus, within=5, position=2)

    agent2 = await connect("agent2")
    await available(agent2)
    assert (await agent2.expect(p.CallOffer)).call_id == call_id


async def test_customer_reconnects_to_the_same_call(connect: Connect, base_url: str) -> None:
    agent, customer, call_id = await connected(connect)
    assert customer.token is not None

    await customer.close()
    assert (await agent.expect(p.PeerState)).state == "lost"
    async with aiohttp.ClientSession() as http:
        again = await SignalingClient.connect(http, base_url, customer.token)
        try:
            assert again.welcome is not None and again.welcome.resumed
            started = await again.expect(p.CallStarted)
            assert started.resumed and started.call_id == call_id
            assert (await agent.expect(p.PeerState)).state == "back"
            await again.send(p.Chat(call_id=call_id, text="back"))
            assert (await agent.expect(p.Chat)).text == "back"
        finally:
            await again.close()


async def test_customer_gone_past_grace_is_abandoned(connect: Connect, app_client: TestClient[Any, Any]) -> None:
    service = app_client.app[SIGNALING]
    customer = await connect()
    await customer.send(p.Join())
    await customer.expect(p.QueueStatus)
    assert customer.welcome is not None
    call_id = customer.welcome.call_id
    await customer.close()
    await asyncio.sleep(0.2)
    assert await service.bus.get_call(call_id or "") is not None
    await service.tick(now=asyncio.get_running_loop().time() * 0 + 10**10)
    assert await service.bus.get_call(call_id or "") is None
    rows = await service.store.db.fetch("SELECT outcome FROM signaling_legs WHERE call_id = $1", call_id)
    assert [r["outcome"] for r in rows] == ["abandoned"]


async def test_transfer_and_silent_supervisor(connect: Connect) -> None:
    agent1, customer, call_id = await connected(connect)

    sup = await connect("super1")
    await sup.send(p.SilentJoin(call_id=call_id))
    monitoring = await sup.expect(p.Monitoring)
    assert monitoring.agent == "agent:agent1"
    assert (await agent1.expect(p.MonitorJoined)).supervisor == "supervisor:super1"
    await agent1.send(p.Sdp(call_id=call_id, kind="offer", sdp="v=0\r\n", to="supervisor:super1"))
    assert (await sup.expect(p.Sdp)).sender == "agent:agent1"
    await customer.send(p.Chat(call_id=call_id, text="hello"))
    assert (await sup.expect(p.Chat)).text == "hello"
    await sup.send(p.Chat(call_id=call_id, text="ask for the ID card"))  # whisper: agent only
    assert (await agent1.expect(p.Chat, sender="supervisor:super1")).text == "ask for the ID card"

    agent2 = await connect("agent2")
    await available(agent2)
    await agent1.send(p.Transfer(call_id=call_id, to="agent", agent="agent2"))
    assert (await agent1.expect(p.CallEnded)).reason == "transferred"
    assert (await customer.expect(p.Notice)).code == "transferred"
    offer = await agent2.expect(p.CallOffer)
    assert offer.transfer_from == "agent1"
    await agent2.send(p.Accept(call_id=call_id))
    await customer.expect(p.CallStarted, peer="agent:agent2")
    kinds = [m.type for m in customer.history]
    assert "monitoring" not in kinds and "monitor_joined" not in kinds

    await sup.send(p.Presence(state="available"))
    await sup.expect(p.PresenceAck)
    await agent2.send(p.Transfer(call_id=call_id, to="supervisor"))
    await sup.expect(p.CallOffer, call_id=call_id)


async def test_bad_input_is_answered_and_the_connection_survives(connect: Connect) -> None:
    customer = await connect()
    for garbage in ["\x00\x01", "{}", '{"type": "accept", "call_id": "x", "ref": "r9"}', "[" * 5000]:
        await customer.send(garbage)
        error = await customer.expect(p.ErrorMsg)
        assert error.code and error.reason
    assert error.code == "bad_json"
    await customer.send('{"type": "accept", "call_id": "x", "ref": "r9"}')
    assert (await customer.expect(p.ErrorMsg)).ref == "r9"
    await customer.ws.send_bytes(b"\xff" * 70_000)
    assert (await customer.expect(p.ErrorMsg)).code == "too_large"
    await customer.send(p.Ping(ref="alive"))
    assert (await customer.expect(p.Pong)).ref == "alive"


async def test_rate_limit(connect: Connect, monkeypatch: pytest.MonkeyPatch) -> None:
    customer = await connect()
    customer_bucket_burst = 200
    for _ in range(customer_bucket_burst + 20):
        await customer.send(p.Ping())
    codes = []
    for _ in range(customer_bucket_burst + 20):
        message = await customer.recv()
        if isinstance(message, p.ErrorMsg):
            codes.append(message.code)
    assert codes and set(codes) == {"rate_limited"}


async def test_hello_rules(base_url: str, connect: Connect) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ClientError, match="bad_token"):
            await SignalingClient.connect(http, base_url, "forged")
        with pytest.raises(ClientError, match="login_required"):
            await SignalingClient.connect(http, base_url)
        ws = await http.ws_connect(base_url.replace("http", "ws") + "/ws")
        await ws.send_str(p.dump(p.Join()))
        reply = await ws.receive_json()
        assert reply["code"] == "hello_first"
        await ws.close()
    customer = await connect()
    await customer.send(p.Presence(state="available"))
    assert (await customer.expect(p.ErrorMsg)).code == "forbidden"


async def test_origin_checked(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(base_url.replace("http", "ws") + "/ws", headers={"Origin": "https://evil.example"})
        assert err.value.status == 403
        client = await SignalingClient.connect(
            http, base_url, (await _token(http, base_url)), origin=base_url
        )
        await client.close()


async def _token(http: aiohttp.ClientSession, base_url: str) -> str:
    async with http.post(base_url + "/api/customer/join") as resp:
        body: dict[str, Any] = await resp.json()
        return str(body["token"])


async def test_supervisor_metrics_and_snapshot(connect: Connect, app_client: TestClient[Any, Any]) -> None:
    agent = await connect("agent1")
    await available(agent)
    customer = await connect(care=True)
    await customer.send(p.Join(care=True))
    call_id = await put_through(agent, customer)
    await customer.send(p.Hangup())
    await agent.expect(p.CallEnded)
    leaver = await connect()
    await agent.send(p.Presence(state="away"))
    await agent.expect(p.PresenceAck)
    await leaver.send(p.Join())
    await leaver.expect(p.QueueStatus)
    await leaver.send(p.Hangup())
    await leaver.expect(p.CallEnded)

    resp = await app_client.get("/api/supervisor/metrics")
    assert resp.status == 401
    await login(app_client, "agent1", "agent1-demo")
    assert (await app_client.get("/api/supervisor/metrics")).status == 403
    await login(app_client, "super1", "super1-demo")
    body = await (await app_client.get("/api/supervisor/metrics")).json()
    lanes = {lane["lane"]: lane for lane in body["lanes"]}
    assert lanes["care"]["answered"] == 1 and lanes["care"]["answered_within_target"] == 1
    assert lanes["care"]["service_level"] == 1.0 and lanes["care"]["avg_handle_s"] is not None
    assert lanes["general"]["abandoned"] == 1 and lanes["general"]["abandon_rate"] == 1.0
    snap = await (await app_client.get("/api/supervisor/queue")).json()
    assert {a["id"]: a["state"] for a in snap["agents"]}["agent1"] == "away"
    del call_id


async def test_sender_cannot_be_forged(connect: Connect) -> None:
    agent, customer, call_id = await connected(connect)
    await customer.send({"type": "chat", "call_id": call_id, "text": "hi", "sender": "agent:agent1"})
    assert (await customer.expect(p.ErrorMsg)).code == "invalid"
    await customer.send(" \n " + json.dumps({"type": "chat", "call_id": call_id, "text": "x"}))
    chat = await agent.expect(p.Chat)
    assert (chat.text, chat.sender) == ("x", f"customer:{call_id}")


async def test_call_events_are_audited(connect: Connect, app_client: TestClient[Any, Any]) -> None:
    from counter.audit import AUDIT

    agent = await connect("agent1")
    await available(agent)
    customer = await connect()
    await customer.send(p.Join(claimed_phone="13800138000"))
    call_id = await put_through(agent, customer)
    await agent.send(p.Hangup(call_id=call_id))
    await customer.expect(p.CallEnded)
    await asyncio.sleep(0.1)
    rows = await app_client.app[AUDIT].search(session_id=call_id)
    actions = [(r["entry"]["action"], r["entry"]["actor_role"]) for r in rows]
    assert actions == [("call.joined", "customer"), ("call.accepted", "agent"), ("call.ended", "agent")]
    assert "13800138000" not in str(rows)  # the phone number is pseudonymised


async def test_garbage_then_close_leaves_no_connection_behind(
    connect: Connect, app_client: TestClient[Any, Any]
) -> None:
    service = app_client.app[SIGNALING]
    customer = await connect()
    assert customer.welcome is not None
    key = f"customer:{customer.welcome.id}"
    assert key in service.conns and key in service.bus.local
    for garbage in ["\x00", "{", '{"type": "hello", "token": "x"}', "null"]:
        await customer.send(garbage)
        await customer.expect(p.ErrorMsg)
    await customer.close()
    for _ in range(50):
        if key not in service.conns:
            break
        await asyncio.sleep(0.02)
    assert key not in service.conns and key not in service.bus.local
