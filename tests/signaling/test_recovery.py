"""A graceful stop changes no call; its successor on the same database puts connected calls back with
their agent's presence, and what the restart then does is the system's doing (reason server_restart)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient

from signaling import protocol as p
from signaling.aio import SIGNALING
from signaling.bus import InProcessBus
from signaling.client import connect_call
from signaling.service import CallEvent, Connection, SignalingService
from tests.signaling.conftest import Connect


async def test_restart_keeps_the_call_and_the_system_requeues_it_when_the_agent_is_not_back(
    app_client: TestClient[Any, Any], connect: Connect,
) -> None:
    service = app_client.app[SIGNALING]
    events: list[CallEvent] = []

    async def record(event: CallEvent) -> None:
        events.append(event)

    agent = await connect("agent1")
    customer = await connect()
    call_id = await connect_call(customer, agent, p.Join())
    service.hooks.append(record)

    await service.close()  # SIGTERM: everyone is told, by code; no call is requeued or ended
    for client in (customer, agent):
        notice = await client.expect(p.Notice)
        assert notice.code is p.NoticeCode.SERVER_RESTART
    assert events == []

    successor = SignalingService(service.store, InProcessBus("successor"), service.options)
    successor.hooks.append(record)
    await successor.start()
    try:
        call = await successor.bus.get_call(call_id)
        assert call is not None and call.status == "in_call" and call.agent_id == "agent1"
        kept = await successor.bus.get_agent("agent1")
        assert kept is not None and kept.state == "in_call" and kept.call_id == call_id

        # The customer's page comes back by itself and is put through to the same call.
        said: list[p.ServerMessage] = []

        async def send(text: str) -> None:
            said.append(p.parse_server(text))

        async def close() -> None:
            return None

        phone = Connection(send, close, None, successor.options)
        assert customer.token is not None
        await successor.handle(phone, p.dump(p.Hello(token=customer.token)))
        assert any(isinstance(m, p.CallStarted) and m.resumed and m.call_id == call_id for m in said), said

        # The agent never comes back: past the grace the system puts the call first in line.
        await successor.tick(time.time() + successor.options.reconnect_grace_s + 1)
        requeued = [e for e in events if e.kind == "requeued"]
        assert [(e.actor_role, e.actor_id, e.reason, e.agent) for e in requeued] == [
            ("system", "system", "server_restart", "agent1")
        ]
        notices = [m for m in said if isinstance(m, p.Notice)]
        assert [n.code for n in notices] == [p.NoticeCode.RESTART_REQUEUED]
        assert any(isinstance(m, p.CallEnded) and m.reason == "server_restart" for m in said)
        back = await successor.bus.get_call(call_id)
        assert back is not None and back.status in ("queued", "offered")
    finally:
        await successor.close()
