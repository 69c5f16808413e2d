"""The helper (家属) as a party of the call (issue 21): recorded by the witness like the others (a third
leg, two more tracks), and the same across nodes and after reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from counter.appkeys import RECORDINGS
from counter.config import load_settings
from signaling import protocol as p
from signaling.aio import SIGNALING
from signaling.helper_client import HelperClient
from signaling.helpers import Consent, HelperEvent, HelperState, HelperStore, HelperToken, InviteError
from signaling.peer import SyntheticVideo
from signaling.witness.client import WitnessSender
from storage import Database
from tests.calls import live_call
from tests.conftest import PG_URL
from tests.signaling.conftest import REDIS_URL, drop_keys
from tests.signaling.witnessing import closed_recording, consented_call, decoded_packets


@pytest.fixture(autouse=True)
def short_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTER_WITNESS_SEGMENT_S", "1")


async def test_the_recording_holds_three_parties(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff_http, \
            aiohttp.ClientSession() as http:
        agent, holder, call_id = await consented_call(staff_http, http, base, HelperClient)
        async with http.post(base + "/api/customer/helper/invite", headers={"X-Customer-Token": holder.token or ""}
                             ) as resp:
            code = (await resp.json())["code"]
        helper = await HelperClient.helper(http, base, code)
        senders = [WitnessSender(SyntheticVideo()) for _ in range(3)]
        try:
            await senders[0].connect(holder, call_id)
            await senders[1].connect(agent, call_id)
            await senders[2].connect(helper, call_id)
            await asyncio.sleep(2.5)
            await holder.send(p.Hangup())
            await helper.expect(p.CallEnded)
        finally:
            for sender in senders:
                await sender.close()
            for client in (helper, holder, agent):
                await client.close()
    row = await closed_recording(app_client, call_id)
    files = app_client.app[RECORDINGS].open(row["id"])
    hashes = {i: files.file_sha256(i) for i in files.segments()}
    packets, _ = await asyncio.to_thread(decoded_packets, files, hashes)
    assert set(packets) == {"customer.video", "customer.audio", "agent.video", "agent.audio", "helper.video",
                            "helper.audio"}, packets


@contextlib.asynccontextmanager
async def _two_nodes(tmp_path: Path, **signaling: Any) -> AsyncIterator[list[TestServer]]:
    """Nodes a and b over one PostgreSQL schema and one Redis prefix, both dropped after; ``signaling``:
    more of the nodes' signaling options."""
    from counter.app import build_app

    schema = f"t_{uuid.uuid4().hex[:12]}"
    prefix = f"rctest-{uuid.uuid4().hex[:10]}"
    servers: list[TestServer] = []
    try:
        for name in ("a", "b"):
            settings = load_settings(
                config_file=tmp_path / "none.toml", environ={}, tls=False, host="127.0.0.1", port=8443,
                data_dir=tmp_path / "data", cert_dir=tmp_path / "certs", require_recording=False,
                database_url=f"{PG_URL}?schema={schema}", redis_url=REDIS_URL, node_id=f"node-{name}",
                signaling={**signaling, "redis_prefix": prefix},
            )
            server = TestServer(await build_app(settings))
            await server.start_server()
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            await server.close()
        conn = await asyncpg.connect(PG_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        await drop_keys(prefix)


async def test_helper_across_nodes_and_after_reconnects(tmp_path: Path) -> None:
    """Holder and agent on node a, the helper on node b (one PostgreSQL, one Redis); then each reconnects."""
    async with _two_nodes(tmp_path) as servers:
        a, b = (str(s.make_url("")).rstrip("/") for s in servers)
        async with aiohttp.ClientSession() as http:
            async with live_call(a, client=HelperClient) as call:
                cid = call.call_id
                status, invited = await call.phone("POST", "/api/customer/helper/invite")
                assert status == 200, invited
                helper = await HelperClient.helper(http, b, invited["code"])  # redeemed on the other node
                assert helper.welcome is not None and helper.welcome.node == "node-b"
                await helper.expect(p.CallStarted, call_id=cid)
                for party in (call.customer, call.agent):
                    await party.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
                await call.agent.send(p.Sdp(call_id=cid, kind="offer", sdp="v=0 a", to=f"helper:{cid}"))
                assert (await helper.expect(p.Sdp, sender="agent:agent1")).sdp == "v=0 a"
                await helper.send({"type": "helper_intro", "call_id": cid, "name": "张三", "relation": "spouse"})
                await call.customer.expect(HelperState, event=HelperEvent.INTRO)  # type: ignore[type-var]
                await call.customer.send({"type": "helper_consent", "call_id": cid, "accepted": True})
                agreed = await helper.expect(HelperState, event=HelperEvent.CONSENT)  # type: ignore[type-var]
                assert agreed.consent is Consent.AGREED
                # The helper drops and comes back on node a: both others are told, and offer again.
                await helper.close()
                for party in (call.customer, call.agent):
                    left = await party.expect(HelperState, event=HelperEvent.LEFT)  # type: ignore[type-var]
                    assert not left.present
                again = await HelperClient.connect(http, a, token=helper.token)
                assert isinstance(again, HelperClient)
                helper = again
                for party in (call.customer, call.agent):
                    back = await party.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
                    assert back.present and back.consent is Consent.AGREED
                # The holder drops and comes back on node b: told the helper is there, offers anew.
                await call.customer.close()
                holder = await HelperClient.connect(http, b, token=call.token)
                await holder.expect(p.CallStarted, call_id=cid)
                told = await holder.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
                assert told.helper == f"helper:{cid}"
                await holder.send(p.Sdp(call_id=cid, kind="offer", sdp="v=0 h", to=f"helper:{cid}"))
                assert (await helper.expect(p.Sdp, sender=f"customer:{cid}")).sdp == "v=0 h"
                await holder.send(p.Hangup())
                await helper.expect(p.CallEnded, call_id=cid)
                await call.agent.expect(p.CallEnded, call_id=cid)
                await holder.close()
                await helper.close()


@pytest.mark.timeout(120)
async def test_a_helper_on_a_node_that_dies_without_a_word_is_no_longer_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper's node stops heartbeating (frozen, killed): the survivors' heartbeat sweep clears the
    helper's presence as it does a dead node's customers; the holder and the agent are told."""
    async with _two_nodes(tmp_path, presence_ttl_s=3) as servers:
        a, b = (str(s.make_url("")).rstrip("/") for s in servers)
        async with aiohttp.ClientSession() as http, live_call(a, client=HelperClient) as call:
            status, invited = await call.phone("POST", "/api/customer/helper/invite")
            assert status == 200, invited
            helper = await HelperClient.helper(http, b, invited["code"])
            try:
                await call.agent.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
                # Node b freezes: no heartbeat and no word to anyone; the helper's socket is left as it is.
                ticker = servers[1].app[SIGNALING]._tick_task
                assert ticker is not None
                ticker.cancel()
                for party in (call.customer, call.agent):  # once b's presence lapses, on a's next sweep
                    left = await party.expect(HelperState, within=20, event=HelperEvent.LEFT)  # type: ignore[type-var]
                    assert not left.present
                call_now = await servers[0].app[SIGNALING].bus.read_call(call.call_id)
                assert call_now is not None and not call_now.helper_present
            finally:
                await helper.close()


async def test_an_invitation_is_redeemed_once_even_at_the_same_moment(db: Database) -> None:
    store = HelperStore(db)
    made = await store.invite("c1", "session:c1")
    results = await asyncio.gather(store.redeem(made.code), store.redeem(made.code), return_exceptions=True)
    tokens = [r for r in results if isinstance(r, HelperToken)]
    refused = [r.code for r in results if isinstance(r, InviteError)]
    assert len(tokens) == 1 and refused == ["invite_used"], results
    assert await store.check_token(tokens[0].token) == "c1"
    assert await store.check_token("made-up") is None and not await store.is_helper_token("made-up")
    await store.end_call("c1")
    assert await store.check_token(tokens[0].token) is None and await store.is_helper_token(tokens[0].token)
    stale = await store.invite("c2", "session:c2", ttl_s=-1.0)
    with pytest.raises(InviteError) as expired:
        await store.redeem(stale.code)
    assert expired.value.code == "invite_expired"
