"""Real aiortc peers through the server; the queue survives a server restart."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from counter.app import build_app
from counter.config import Settings
from signaling import protocol as p
from signaling.client import SignalingClient
from signaling.peer import direct_call
from signaling.probe import connect_pair, place_call
from tests.signaling.conftest import Connect, base_url, connect, fast_signaling

__all__ = ["base_url", "connect", "fast_signaling"]  # the signaling tests' fixtures, used here


async def test_video_call_through_the_server(base_url: str) -> None:
    result = await place_call(base_url, "agent1", "agent1-demo", frames=10, within=30)
    assert result["frames_received"] >= 10 and result["frames_received_agent"] >= 10
    assert result["setup_ms"] > 0


async def test_direct_call_baseline_exchanges_frames() -> None:
    setup_ms, frames = await direct_call(frames=5)
    assert setup_ms > 0 and frames >= 5


async def test_reconnect_rebuilds_the_peer_connection(connect: Connect, base_url: str) -> None:
    agent = await connect("agent1")
    await agent.send(p.Presence(state="available"))
    customer = await connect()
    await customer.send(p.Join())
    offer = await agent.expect(p.CallOffer)
    await agent.send(p.Accept(call_id=offer.call_id))
    await customer.expect(p.CallStarted)
    peers = await connect_pair(agent, customer, offer.call_id)
    assert await peers[1].wait_frames(3) >= 3
    for peer in peers:
        await peer.close()
    await customer.close()  # the phone's network drops

    async with aiohttp.ClientSession() as http:
        again = await SignalingClient.connect(http, base_url, customer.token)
        try:
            await again.expect(p.CallStarted, resumed=True)
            await agent.expect(p.PeerState, state="back")
            peers = await connect_pair(agent, again, offer.call_id)  # the agent re-offers
            assert await peers[1].wait_frames(3) >= 3
            for peer in peers:
                await peer.close()
        finally:
            await again.close()


async def _serve(settings: Settings) -> TestServer:
    server = TestServer(await build_app(settings))
    await server.start_server()
    return server


async def test_restart_loses_no_queued_customer(settings: Settings) -> None:
    server = await _serve(settings)
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        tokens: list[str] = []
        for care in (False, True, False):
            client = await SignalingClient.customer(http, base, care=care)
            await client.send(p.Join(care=care))
            await client.expect(p.QueueStatus)
            assert client.token is not None
            tokens.append(client.token)
        await server.close()  # the clients' sockets are closed by the shutdown

        server = await _serve(settings)
        base = str(server.make_url("")).rstrip("/")
        try:
            back: list[SignalingClient] = []
            for token in tokens:
                client = await SignalingClient.connect(http, base, token)
                assert client.welcome is not None and client.welcome.resumed
                back.append(client)
            positions: dict[str, Any] = {}
            for client in back:
                status = await client.expect(p.QueueStatus)
                positions[status.call_id] = (status.lane, status.position)
            # true positions: the care lane is served first, so the care caller is ahead of both others
            assert sorted(positions.values()) == [("care", 1), ("general", 2), ("general", 3)]
            agent = await SignalingClient.staff(http, base, "agent2", "agent2-demo")
            await agent.send(p.Presence(state="available"))
            offer = await agent.expect(p.CallOffer)
            assert back[0].welcome is not None and offer.call_id == back[0].welcome.call_id
            for client in [*back, agent]:
                await client.close()
        finally:
            await server.close()


async def test_probe_places_a_recorded_call(base_url: str) -> None:
    """``counter probe call --record``: both parties' legs to the witness, the recording reported closed."""
    result = await place_call(base_url, "agent1", "agent1-demo", frames=30, within=30,
                              record=("audit1", "audit1-demo"))
    recording = result["recording"]
    assert recording["closed"] and recording["id"] and recording["bytes"] > 0
    assert recording["segments"] >= 1 and recording["audited_segments"] == recording["segments"]
    assert recording["intact"]
