"""One owner per call across two ``counter serve`` nodes (one PostgreSQL schema, one Redis, separate
data dirs): the owner killed with SIGKILL mid-call, the call goes on through the other node, which
takes it over; the recording continues in a linked next part; the level and the consent are kept.

Real aiortc peers on loopback send both parties' media to the witness; nothing is mocked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiortc.mediastreams import VideoStreamTrack

from signaling import protocol as p
from signaling.peer import loopback_only
from signaling.witness import MediaState
from signaling.witness.client import WitnessClient, WitnessSender
from signaling.witness.relay import WitnessState
from tests.hardening.conftest import PrivatePostgres, PrivateRedis
from tests.hardening.multinode import accepted_call, close_media, csrf_header, post_json, wait_until
from tests.hardening.nodes import LoopbackNode
from tests.hardening.shared_state import play_through, recordings, shared_config

loopback_only()


@pytest.fixture
async def http() -> AsyncIterator[tuple[aiohttp.ClientSession, aiohttp.ClientSession, aiohttp.ClientSession]]:
    """The agent's browser, the auditor's (one cookie for every node, as one site) and the phone."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as auditor, \
            aiohttp.ClientSession() as phone:
        yield staff, auditor, phone


async def test_owner_killed_the_call_goes_on_in_a_linked_part_level_and_consent_kept(
    tmp_path: Path, private_redis: PrivateRedis, private_pg: PrivatePostgres, schema_url: str,
    http: tuple[aiohttp.ClientSession, aiohttp.ClientSession, aiohttp.ClientSession],
) -> None:
    staff, auditor, phone = http
    prefix = f"o{uuid.uuid4().hex[:8]}"
    # The recordings folder is mounted on both nodes: the dead owner's part stays readable.
    shared = shared_config(tmp_path, COUNTER_RECORDINGS_DIR=str(tmp_path / "shared" / "recordings"))
    a = LoopbackNode("oa", tmp_path, schema_url, private_redis.url, prefix, data_dir=tmp_path / "data-a", **shared)
    b = LoopbackNode("ob", tmp_path, schema_url, private_redis.url, prefix, data_dir=tmp_path / "data-b", **shared)
    senders: list[WitnessSender] = []
    clients: list[WitnessClient] = []
    conn = await asyncpg.connect(private_pg.url, server_settings={"search_path": schema_url.split("=")[1]})
    try:
        await a.start()  # first alone: it creates the schema
        await b.start()
        # The customer on node a (recording consented there), agent1 on node b; the line proved at A1.
        customer = await WitnessClient.customer(phone, a.url)
        agent = await WitnessClient.staff(staff, b.url, "agent1", "agent1-demo")
        assert isinstance(customer, WitnessClient) and isinstance(agent, WitnessClient)
        clients += [customer, agent]
        assert (await customer.consent_to_recording()).consent
        sid = await accepted_call(agent, customer)
        csrf = await csrf_header(staff, b.url)
        on_b = f"{b.url}/api/counter/sessions/{sid}"
        assert (await post_json(staff, on_b + "/verify-password", {"password": "246810"}, csrf))[0] == 200

        # Both legs reach the owner, node a (the customer's leg came first): the agent's through node b.
        for client in (customer, agent):
            sender = WitnessSender(VideoStreamTrack())
            senders.append(sender)
            assert (await sender.connect(client, sid)).recording
        assert await conn.fetchval("SELECT node FROM recording_parts WHERE call_id = $1", sid) == "node-oa"

        async def both_recorded(part: int) -> bool:
            parts = await recordings(conn, sid)
            return len(parts) >= part and {"customer.video", "agent.video"} <= parts[part - 1]["tracks"]

        await wait_until(lambda: both_recorded(1), within=30)

        a.kill()  # the owner dies without a word
        # Node b sees its heartbeat lapse, takes the call over and tells the parties the recording
        # stopped: their pages open new legs (the agent's console too, though it was not on node a).
        stopped = await agent.expect(WitnessState, within=30, status=MediaState.STOPPED)  # type: ignore[type-var]
        assert not stopped.recording
        back = await WitnessClient.connect(phone, b.url, customer.token)
        assert isinstance(back, WitnessClient) and back.welcome is not None and back.welcome.resumed
        clients.append(back)
        assert (await back.expect(p.CallStarted, within=30)).resumed
        # The legs again, now through node b, which takes the call over: no new consent is asked for.
        for client in (back, agent):
            sender = WitnessSender(VideoStreamTrack())
            senders.append(sender)
            assert (await sender.connect(client, sid, within=30)).recording
        await wait_until(lambda: both_recorded(2), within=30)

        first, second = (await recordings(conn, sid))[:2]
        assert (first["part"], second["part"]) == (1, 2)
        assert second["previous_id"] == first["id"] and second["node"] == "node-ob", second
        assert first["ended_at"] is not None and first["segments"] >= 1, first  # closed where it stopped
        closings = [json.loads(r["body"])["details"] for r in await conn.fetch(
            "SELECT body FROM audit_entries WHERE session_id = $1 AND action = 'recording.closed'", sid)]
        assert {"recording": first["id"], "reason": "owner_lost", "next": second["id"]} in closings, closings
        async with staff.get(on_b) as resp:
            assert (await resp.json())["session"]["level"] == "A1"  # the level kept

        # The auditor sees the link both ways; the dead owner's part is intact and plays from node b.
        async with auditor.post(b.url + "/api/auth/login", json={"username": "audit1", "password": "audit1-demo"}):
            pass
        async with auditor.get(f"{b.url}/api/recordings/{second['id']}") as resp:
            view = await resp.json()
            assert resp.status == 200 and view["recording"]["previous_id"] == first["id"], view
        async with auditor.get(f"{b.url}/api/recordings/{first['id']}") as resp:
            view = await resp.json()
            assert resp.status == 200 and view["recording"]["next_id"] == second["id"] and view["intact"], view
        assert all(await play_through(auditor, b.url, b.url, first["id"]))

        await agent.send(p.Hangup(call_id=sid))
        await back.expect(p.CallEnded, within=20)

        async def closed() -> bool:
            return (await recordings(conn, sid))[1]["ended_at"] is not None

        await wait_until(closed, within=20)
    finally:
        await conn.close()
        await close_media(senders, clients, a, b)
    log = b.tail(4000)
    assert "Traceback" not in log, log
