"""Agents' states as an ACD keeps them (available, offered, in call, wrap-up, away), told by the server
on every change; after-call work ends by itself and the next waiting customer is offered unasked."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from counter.config import Settings
from signaling import protocol as p
from signaling.aio import SIGNALING
from signaling.client import SignalingClient
from tests.conftest import login
from tests.signaling.conftest import Connect, offered

WRAP_UP_S = 1


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"wrap_up_s": WRAP_UP_S})


async def state(agent: SignalingClient, expected: p.AgentState, within: float = 10) -> p.AgentStatus:
    """The next ``agent_state`` push; it must say ``expected``."""
    pushed = await agent.expect(p.AgentStatus, within=within)
    assert pushed.state is expected, pushed
    return pushed


async def wall(client: TestClient[Any, Any]) -> dict[str, Any]:
    agents = (await (await client.get("/api/supervisor/queue")).json())["agents"]
    return {a["id"]: a for a in agents}


async def test_states_are_the_servers_and_wrap_up_ends_by_itself(
    connect: Connect, app_client: TestClient[Any, Any]
) -> None:
    await login(app_client, "super1", "super1-demo")
    agent = await connect("agent1")
    assert (await agent.expect(p.AgentStatus)).state is p.AgentState.AWAY  # told on hello
    await agent.send(p.Presence(state="available"))
    ack = await agent.expect(p.PresenceAck)
    assert ack.state is p.AgentState.AVAILABLE and ack.in_state_s == 0
    first, second = await connect(), await connect()
    await first.send(p.Join())
    offer = await agent.expect(p.CallOffer)
    offered = await state(agent, p.AgentState.OFFERED)
    assert offered.call_id == offer.call_id
    assert (await wall(app_client))["agent1"]["state"] == "offered"
    await agent.send(p.Accept(call_id=offer.call_id))
    await state(agent, p.AgentState.IN_CALL)
    assert (await wall(app_client))["agent1"]["state"] == "in_call"
    metrics = await (await app_client.get("/api/supervisor/metrics")).json()
    assert metrics["agent_states"]["in_call"] == 1 and metrics["wrap_up_s"] == WRAP_UP_S, metrics

    # Asking to be available in a call changes nothing: the call decides.
    await agent.send(p.Presence(state="available", ref="r1"))
    refused = await agent.expect(p.ErrorMsg)
    assert (refused.code, refused.ref) == ("in_call", "r1")

    await second.send(p.Join())  # waits: the only agent is busy
    await second.expect(p.QueueStatus)
    await first.send(p.Hangup())
    await agent.expect(p.CallEnded)
    wrap = await state(agent, p.AgentState.WRAP_UP)
    assert wrap.wrap_up_left_s == WRAP_UP_S and wrap.call_id is None, wrap
    row = (await wall(app_client))["agent1"]
    assert row["state"] == "wrap_up" and row["wrap_up_left_s"] is not None, row

    # Nothing sent by the agent: after-call work ends and the waiting customer is offered.
    back = await state(agent, p.AgentState.AVAILABLE, within=WRAP_UP_S + 10)
    assert back.in_state_s == 0
    nxt = await agent.expect(p.CallOffer, within=10)
    assert second.welcome is not None and nxt.call_id == second.welcome.call_id
    await state(agent, p.AgentState.OFFERED)
    assert [type(m).__name__ for m in agent.history if isinstance(m, p.ErrorMsg)] == ["ErrorMsg"]


async def test_wrap_up_extended_and_closed(connect: Connect, app_client: TestClient[Any, Any]) -> None:
    agent, _, offer = await offered(connect)
    await state(agent, p.AgentState.OFFERED)
    await agent.send(p.Accept(call_id=offer.call_id))
    await state(agent, p.AgentState.IN_CALL)
    await agent.send(p.Hangup(call_id=offer.call_id))
    await state(agent, p.AgentState.WRAP_UP)
    await agent.send(p.Presence(state="wrap_up"))  # extend: the limit counts again from now
    extended = await agent.expect(p.PresenceAck)
    assert extended.state is p.AgentState.WRAP_UP and extended.wrap_up_left_s == WRAP_UP_S, extended
    await agent.send(p.Presence(state="available"))  # closed the session: available at once
    assert (await agent.expect(p.PresenceAck)).state is p.AgentState.AVAILABLE
    snap = await app_client.app[SIGNALING].snapshot()
    agents: list[dict[str, Any]] = snap["agents"]  # type: ignore[assignment]
    assert [a["state"] for a in agents if a["id"] == "agent1"] == ["available"]
