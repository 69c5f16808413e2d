"""Place one real call through a running server: an agent and a customer, two aiortc peers, video."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any

import aiohttp

from signaling import protocol as p
from signaling.client import SignalingClient
from signaling.peer import SyntheticVideo, VideoPeer


async def connect_pair(
    agent: SignalingClient, customer: SignalingClient, call_id: str, within: float = 20.0
) -> tuple[VideoPeer, VideoPeer]:
    """Run the SDP exchange through the server (the agent offers); return the connected peers."""
    agent_peer, customer_peer = VideoPeer(), VideoPeer()
    try:
        await agent.send(p.Sdp(call_id=call_id, kind="offer", sdp=await agent_peer.offer()))
        offer = await customer.expect(p.Sdp, within=within, kind="offer")
        answer = await customer_peer.answer(offer.sdp)
        await customer.send(p.Sdp(call_id=call_id, kind="answer", sdp=answer))
        reply = await agent.expect(p.Sdp, within=within, kind="answer")
        await agent_peer.accept(reply.sdp)
        await asyncio.wait_for(agent_peer.connected.wait(), within)
    except BaseException:
        await agent_peer.close()
        await customer_peer.close()
        raise
    return agent_peer, customer_peer


async def place_call(
    url: str,
    username: str,
    password: str,
    agent_url: str | None = None,
    frames: int = 30,
    care: bool = False,
    within: float = 30.0,
    tls: ssl.SSLContext | None = None,
    record: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Queue a customer on ``url``, answer as ``username`` on ``agent_url`` (default ``url``), exchange
    video, hang up.  Returns the timings and how many frames each side received.  ``tls``: whom to
    trust for https (default: the system's CAs).  ``record`` (an auditor's login and password): the
    customer consents to the recording, both parties send their video and audio to the witness during
    the call, and the result has the recording as that auditor reads it once closed."""
    from signaling.witness.client import WitnessClient, WitnessSender, recording_report

    client_type = WitnessClient if record is not None else SignalingClient
    senders: list[WitnessSender] = []
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=tls or True)) as staff_http,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls or True)) as cust_http,
    ):
        agent = await client_type.staff(staff_http, agent_url or url, username, password)
        customer = await client_type.customer(cust_http, url, care=care)
        peers: tuple[VideoPeer, VideoPeer] | None = None
        try:
            if isinstance(customer, WitnessClient):
                await customer.consent_to_recording()
            await agent.send(p.Presence(state="available"))
            await agent.expect(p.PresenceAck, within=within)
            joined = time.perf_counter()
            await customer.send(p.Join(care=care))
            offer = await agent.expect(p.CallOffer, within=within)
            offered = time.perf_counter()
            await agent.send(p.Accept(call_id=offer.call_id))
            await customer.expect(p.CallStarted, within=within)
            await agent.expect(p.CallStarted, within=within)
            started = time.perf_counter()
            peers = await connect_pair(agent, customer, offer.call_id, within)
            agent_peer, customer_peer = peers
            for client in (customer, agent):  # the customer's leg first: the witness records from it
                if isinstance(client, WitnessClient):
                    senders.append(WitnessSender(SyntheticVideo(640, 480)))
                    await senders[-1].connect(client, offer.call_id, within)
            got_customer = await customer_peer.wait_frames(frames, within)
            got_agent = await agent_peer.wait_frames(frames, within)
            await agent.send(p.Hangup(call_id=offer.call_id))
            await customer.expect(p.CallEnded, within=within)
            recording: dict[str, Any] = {}
            if record is not None:
                for sender in senders:
                    await sender.close()
                async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                                 connector=aiohttp.TCPConnector(ssl=tls or True)) as audit_http:
                    recording["recording"] = await recording_report(audit_http, url, *record, offer.call_id,
                                                                    within)
            return {
                "call_id": offer.call_id,
                "customer_node": customer.welcome.node if customer.welcome else None,
                "agent_node": agent.welcome.node if agent.welcome else None,
                "route_ms": round((offered - joined) * 1000, 2),
                "accept_ms": round((started - offered) * 1000, 2),
                "setup_ms": round(agent_peer.setup_ms or 0.0, 2),
                "frames_received": got_customer,
                "frames_received_agent": got_agent,
                **recording,
            }
        finally:
            for sender in senders:
                await sender.close()
            if peers is not None:
                for peer in peers:
                    await peer.close()
            for client in (agent, customer):
                with contextlib.suppress(Exception):
                    await client.close()
