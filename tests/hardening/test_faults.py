"""Faults with real components: a private Redis stopped and restarted under two nodes, a private
PostgreSQL restarted during transactions, a node killed with SIGKILL mid-call, an agent's connection
dropped mid-transaction.  The shared services are never touched."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from signaling import protocol as p
from signaling.client import ClientError, SignalingClient
from tests.hardening.conftest import PrivatePostgres, PrivateRedis
from tests.hardening.multinode import PHONE, accepted_call, csrf_header, post_json, wait_until
from tests.hardening.nodes import Node


async def _served_at_a1(
    node: Node, staff: aiohttp.ClientSession, phone: aiohttp.ClientSession,
) -> tuple[SignalingClient, SignalingClient, str, dict[str, str], str, dict[str, str]]:
    """agent1 on ``node`` serving a new customer's call, the line proved at A1 by password.  A call the
    node restored for agent1 (calls survive a restart) is hung up first: its customer is gone for good.
    Returns the agent, the customer, the call id, the CSRF header, the session's URL and the
    customer's token header."""
    agent = await SignalingClient.staff(staff, node.url, "agent1", "agent1-demo")
    with contextlib.suppress(ClientError):
        restored = await agent.expect(p.CallStarted, within=2)
        await agent.send(p.Hangup(call_id=restored.call_id))
        await agent.expect(p.CallEnded, within=10, call_id=restored.call_id)
    customer = await SignalingClient.customer(phone, node.url)
    call_id = await accepted_call(agent, customer)
    csrf = await csrf_header(staff, node.url)
    s = f"{node.url}/api/counter/sessions/{call_id}"
    assert (await post_json(staff, s + "/verify-password", {"password": "246810"}, csrf))[0] == 200
    return agent, customer, call_id, csrf, s, {"X-Customer-Token": customer.token or ""}


@contextlib.asynccontextmanager
async def _two_nodes(tmp_path: Path, redis: PrivateRedis, schema_url: str, *names: str,
                     ) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes named ``names`` sharing the schema, the Redis (under a fresh prefix) and the data dir;
    started, and stopped at the end."""
    prefix = f"{names[0][0]}{uuid.uuid4().hex[:8]}"
    a, b = (Node(name, tmp_path, schema_url, redis.url, prefix, data_dir=tmp_path / "data") for name in names)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


async def _call_across(
    sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession], a: Node, b: Node, within: float,
) -> tuple[SignalingClient, SignalingClient, str, SignalingClient]:
    """agent1 on node ``b`` in a call with a customer on node ``a``, and a second customer queued on
    ``a`` (told its place within ``within`` s): the agent, the customer, the call id, the waiting one."""
    staff, phone = sessions
    agent = await SignalingClient.staff(staff, b.url, "agent1", "agent1-demo")
    customer = await SignalingClient.customer(phone, a.url)
    call_id = await accepted_call(agent, customer)
    waiting = await SignalingClient.customer(phone, a.url)
    await waiting.send(p.Join(claimed_phone="13900139000"))
    await waiting.expect(p.QueueStatus, within=within)
    return agent, customer, call_id, waiting


async def _ready(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url + "/readyz") as resp:
        return resp.status, await resp.json()


# --- Redis -----------------------------------------------------------------------------------------------


async def _expect_past_outage(client: SignalingClient, kind: type[Any], within: float = 10.0) -> Any:
    """``kind``, skipping the ``unavailable`` errors the server sent this client during the outage
    (they wait in its socket's buffer); any other error still fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        message = await client.recv(max(0.0, deadline - loop.time()))
        if isinstance(message, kind):
            return message
        if isinstance(message, p.ErrorMsg) and message.code != "unavailable":
            raise AssertionError(f"server error {message.code}: {message.reason}")


async def _said_until_heard(sender: SignalingClient, hearer: SignalingClient, call_id: str, text: str) -> None:
    """``sender`` says ``text`` in the call, again every 3 s, until ``hearer`` hears it (30 s at most)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        await sender.send(p.Chat(call_id=call_id, text=text))
        with contextlib.suppress(ClientError):
            until = loop.time() + 3
            while (await _expect_past_outage(hearer, p.Chat, within=until - loop.time())).text != text:
                pass  # an earlier line
            return
    raise AssertionError(f"{text!r} was not heard: the call did not carry on after Redis came back")


async def test_redis_outage_degrades_both_nodes_and_they_recover(
    tmp_path: Path, private_redis: PrivateRedis, schema_url: str,
    sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
) -> None:
    staff, phone = sessions
    async with _two_nodes(tmp_path, private_redis, schema_url, "a", "b") as (a, b):
        agent, customer, call_id, waiting = await _call_across(sessions, a, b, within=10)
        csrf = await csrf_header(staff, b.url)

        private_redis.stop()
        # Signaling says what is wrong and keeps every connection; readiness reports it.
        await customer.send(p.Chat(call_id=call_id, text="are you there?"))
        error = await customer.expect(p.ErrorMsg, within=10)
        assert error.code == "unavailable" and "stay connected" in error.reason

        async def degraded() -> bool:
            status, body = await _ready(phone, a.url)
            return status == 503 and "signaling" in body["problems"]

        await wait_until(degraded)
        # What needs only the database still works: the agent serves the connected customer.
        s = f"{b.url}/api/counter/sessions/{call_id}"
        assert (await post_json(staff, s + "/verify-password", {"password": "246810"}, csrf))[0] == 200
        status, tx = await post_json(staff, s + "/transactions", {"code": "datacap.set", "inputs": {"cap_mb": 300},
                                                              "idempotency_key": "redis-1"}, csrf)
        assert status == 202, tx
        status, done = await post_json(phone, f"{a.url}/api/customer/counter/transactions/{tx['id']}/confirm",
                                   {"accept": True}, {"X-Customer-Token": customer.token or ""})
        assert status == 200 and done["status"] == "done"

        private_redis.start()  # empty: everything shared was lost

        async def ready() -> bool:
            return (await _ready(phone, a.url))[0] == 200 and (await _ready(phone, b.url))[0] == 200

        await wait_until(ready)
        await asyncio.sleep(1.0)  # /readyz mirrors the nodes' state every 0.2 s: let both settle
        await wait_until(ready)
        assert not (customer.closed or waiting.closed or agent.closed)
        # The call goes on across the nodes, both ways, and the waiting customer is still in line...
        # (Both nodes re-subscribe on their own schedule after /readyz turns green: a line sent in that
        # moment is answered 'unavailable', or published before the other node listens again, and is
        # said again, as the customer page does.)
        await _said_until_heard(customer, agent, call_id, "back")
        await _said_until_heard(agent, customer, call_id, "welcome back")
        await _expect_past_outage(waiting, p.QueueStatus)
        # ...and is offered to the agent once the first call ends.
        await agent.send(p.Hangup(call_id=call_id))
        await _expect_past_outage(customer, p.CallEnded)
        await agent.send(p.Presence(state="available"))
        offer = await _expect_past_outage(agent, p.CallOffer, within=20)
        assert offer.claimed_phone == "13900139000"
        for client in (agent, customer, waiting):
            await client.close()


# --- PostgreSQL --------------------------------------------------------------------------------------------


async def test_postgres_restart_during_transactions_loses_nothing(
    tmp_path: Path, private_pg: PrivatePostgres, schema_url: str,
    sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
) -> None:
    staff, phone = sessions
    node = Node("pg", tmp_path, schema_url)
    await node.start()
    statuses: list[int] = []
    try:
        agent, customer, call_id, csrf, s, mine = await _served_at_a1(node, staff, phone)
        done_caps: list[int] = []

        async def one(i: int) -> None:
            """Request and confirm ``cap_mb = 100 + i``, retrying through 503s with the same keys."""
            while True:
                status, tx = await post_json(staff, s + "/transactions", {"code": "datacap.set", "inputs": {
                    "cap_mb": 100 + i}, "idempotency_key": f"pg-{i}"}, csrf)
                statuses.append(status)
                if status != 503:
                    break
                await asyncio.sleep(0.3)
            assert status in (200, 202), tx
            while True:
                status, out = await post_json(phone, f"{node.url}/api/customer/counter/transactions/{tx['id']}/confirm",
                                          {"accept": True}, mine)
                statuses.append(status)
                if status != 503:
                    break
                await asyncio.sleep(0.3)
            assert status == 200 and out["status"] == "done", out
            done_caps.append(100 + i)

        async def worker() -> None:
            for i in range(12):
                await one(i)

        work = asyncio.create_task(worker())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(private_pg.stop, "fast")
        status, body = await post_json(staff, s + "/transactions", {"code": "datacap.set", "inputs": {"cap_mb": 1},
                                                                "idempotency_key": "while-down"}, csrf)
        assert status == 503 and "nothing was changed" in body["error"]["reason"]
        ready_status, ready_body = await _ready(phone, node.url)
        assert ready_status == 503 and "database" in ready_body["problems"]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(private_pg.start)
        await asyncio.wait_for(work, 120)
        assert set(statuses) <= {200, 202, 503}  # never a 500, never a hang
        assert (await _ready(phone, node.url))[0] == 200

        # Nothing half-done: each request is done with its audit entry and SMS, or still pending.
        conn = await asyncpg.connect(private_pg.url, server_settings={"search_path": schema_url.split("=")[1]})
        try:
            rows = await conn.fetch("SELECT id, status, audit_seq, idem_key FROM tx_requests WHERE session_id = $1",
                                    call_id)
            by_key = {r["idem_key"]: r for r in rows}
            assert all(r["status"] in ("done", "pending") for r in rows), [dict(r) for r in rows]
            for i in range(12):
                row = by_key[f"pg-{i}"]
                assert row["status"] == "done" and row["audit_seq"] is not None
                entry = await conn.fetchrow("SELECT action FROM audit_entries WHERE seq = $1", row["audit_seq"])
                assert entry is not None and entry["action"] == "transaction.datacap.set"
                assert await conn.fetchval("SELECT count(*) FROM sms_outbox WHERE tx_id = $1", row["id"]) == 1
            assert by_key.get("while-down") is None  # refused while down: not written at all
            cap = await conn.fetchval("SELECT datacap_mb FROM acct_lines WHERE msisdn = $1", PHONE)
            assert cap == done_caps[-1]
        finally:
            await conn.close()
        # The audit log still verifies end to end (no lost or reordered entry).
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as auditor:
            async with auditor.post(node.url + "/api/auth/login",
                                    json={"username": "audit1", "password": "audit1-demo"}) as resp:
                token = (await resp.json())["csrf_token"]
            async with auditor.post(node.url + "/api/audit/verify", headers={"X-CSRF-Token": token}) as resp:
                report = await resp.json()
        assert report["ok"], report
        await agent.close()
        await customer.close()
    finally:
        node.stop()
    assert "Traceback" not in node.tail(400) or "unhandled error" not in node.tail(400)


# --- SIGKILL ----------------------------------------------------------------------------------------------------


async def test_sigkill_mid_call_customer_moves_to_the_other_node_queue_intact(
    tmp_path: Path, private_redis: PrivateRedis, schema_url: str,
    sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
) -> None:
    phone = sessions[1]
    async with _two_nodes(tmp_path, private_redis, schema_url, "ka", "kb") as (a, b):
        agent, customer, call_id, waiting = await _call_across(sessions, a, b, within=30)

        a.kill()  # the customers' node dies without a word
        with contextlib.suppress(Exception):
            while True:
                await customer.recv(within=5)
        assert customer.closed or customer.ws.close_code is not None
        # Noticed once node a's liveness key lapses (the presence TTL, 6 s here; a lock a held when it
        # died lapses within 5 s meanwhile): within 20 s.
        lost = await agent.expect(p.PeerState, within=20)
        assert lost.state == "lost"

        # Each customer reconnects to the other node with the token it has.
        back = await SignalingClient.connect(phone, b.url, customer.token)
        assert back.welcome is not None and back.welcome.resumed
        assert (await back.expect(p.CallStarted, within=30)).resumed
        assert (await agent.expect(p.PeerState, within=30)).state == "back"
        await back.send(p.Chat(call_id=call_id, text="still here"))
        assert (await agent.expect(p.Chat, within=30)).text == "still here"
        queued = await SignalingClient.connect(phone, b.url, waiting.token)
        assert queued.welcome is not None and queued.welcome.resumed
        status = await queued.expect(p.QueueStatus, within=30)
        assert status.position == 1
        await agent.send(p.Hangup(call_id=call_id))
        await back.expect(p.CallEnded, within=30)
        await agent.send(p.Presence(state="available"))
        assert (await agent.expect(p.CallOffer, within=20)).call_id == waiting.welcome.call_id  # type: ignore[union-attr]
        for client in (agent, back, queued):
            await client.close()


# --- agent dropped mid-transaction ----------------------------------------------------------------------------


async def test_agent_dropped_mid_transaction(
    tmp_path: Path, schema_url: str, sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
) -> None:
    staff, phone = sessions
    node = Node("drop", tmp_path, schema_url)
    await node.start()
    try:
        agent = await SignalingClient.staff(staff, node.url, "agent1", "agent1-demo")
        customer = await SignalingClient.customer(phone, node.url)
        call_id = await accepted_call(agent, customer)
        csrf = await csrf_header(staff, node.url)
        s = f"{node.url}/api/counter/sessions/{call_id}"
        assert (await post_json(staff, s + "/verify-password", {"password": "246810"}, csrf))[0] == 200
        status, tx = await post_json(staff, s + "/transactions", {"code": "datacap.set", "inputs": {"cap_mb": 777},
                                                              "idempotency_key": "drop-1"}, csrf)
        assert status == 202
        await agent.ws.close()  # the agent's browser is closed before the customer confirms
        notice = await customer.expect(p.Notice, within=20, code="agent_lost")
        assert "first in line" in notice.text
        await customer.expect(p.CallEnded, within=10, reason="agent_lost")
        # The customer still decides on the pending change (it is theirs, shown on their screen): the
        # answer is definite, and a "done" is whole (change, audit entry, SMS) or nothing at all.
        status, out = await post_json(phone, f"{node.url}/api/customer/counter/transactions/{tx['id']}/confirm",
                                  {"accept": True}, {"X-Customer-Token": customer.token or ""})
        assert status in (200, 409), out
        # The customer, first in line, reaches the next agent, who sees what happened in the session.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            agent2 = await SignalingClient.staff(other, node.url, "agent2", "agent2-demo")
            await agent2.send(p.Presence(state="available"))
            assert (await agent2.expect(p.CallOffer, within=20)).call_id == call_id
            await agent2.send(p.Accept(call_id=call_id))
            await agent2.expect(p.CallStarted, within=10, call_id=call_id)
            history: dict[int, Any] = {}

            async def handed_over() -> bool:
                # The session follows the call to agent2 by the "accepted" hook, which runs just after
                # call_started is sent (a short window where the console gets 403 not_your_session).
                async with other.get(s) as resp:
                    if resp.status == 403:
                        return False
                    assert resp.status == 200, await resp.text()
                    history.update({t["id"]: t for t in (await resp.json())["transactions"]})
                    return True

            await wait_until(handed_over, within=10)
            assert history[tx["id"]]["status"] == (out.get("status") if status == 200 else "pending")
            await agent2.close()
        await customer.close()
        conn = await asyncpg.connect(schema_url.split("?")[0],
                                     server_settings={"search_path": schema_url.split("=")[1]})
        try:
            row = await conn.fetchrow("SELECT status, audit_seq FROM tx_requests WHERE id = $1", tx["id"])
            assert row is not None
            cap = await conn.fetchval("SELECT datacap_mb FROM acct_lines WHERE msisdn = $1", PHONE)
            sms = await conn.fetchval("SELECT count(*) FROM sms_outbox WHERE tx_id = $1", tx["id"])
            if row["status"] == "done":
                assert cap == 777 and sms == 1 and row["audit_seq"] is not None
                action = await conn.fetchval("SELECT action FROM audit_entries WHERE seq = $1", row["audit_seq"])
                assert action == "transaction.datacap.set"
            else:
                assert cap != 777 and sms == 0
            actions = {r["action"] for r in await conn.fetch(
                "SELECT action FROM audit_entries WHERE session_id = $1", call_id)}
            assert {"call.requeued", "call.accepted"} <= actions
        finally:
            await conn.close()
    finally:
        node.stop()


# --- SIGKILL under transaction load, restarted ------------------------------------------------------------------


async def _in_flight_left(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Requests no one would ever finish: ``running``, or confirmed (approved where needed) but not run."""
    return [dict(r) for r in await conn.fetch(
        "SELECT id, code, status, confirmed_at FROM tx_requests WHERE status = 'running' OR (status = 'pending'"
        " AND confirmed_at IS NOT NULL AND (needs_approval = 0 OR approved_by IS NOT NULL))")]


async def _load_then_kill(node: Node, prefix: str, acknowledged: list[int]) -> None:
    """A call on ``node``; three workers ask for and confirm look-ups and changes; SIGKILL once six
    confirmations have been answered (others are being asked and confirmed right then)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff, \
            aiohttp.ClientSession() as phone:
        agent, customer, _, csrf, s, mine = await _served_at_a1(node, staff, phone)
        enough = asyncio.Event()

        async def worker(w: int) -> None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                for i in range(200):
                    code, inputs = ("balance.query", {}) if i % 2 else ("datacap.set", {"cap_mb": 100 + 10 * w + i})
                    status, tx = await post_json(staff, s + "/transactions", {
                        "code": code, "inputs": inputs, "idempotency_key": f"{prefix}-{w}-{i}"}, csrf)
                    if status != 202:
                        continue
                    confirm = f"{node.url}/api/customer/counter/transactions/{tx['id']}/confirm"
                    status, out = await post_json(phone, confirm, {"accept": True}, mine)
                    if status == 200 and out["status"] != "pending":
                        acknowledged.append(tx["id"])
                        if len(acknowledged) % 6 == 0:
                            enough.set()

        workers = [asyncio.create_task(worker(w)) for w in range(3)]
        await asyncio.wait_for(enough.wait(), 120)
        node.kill()
        await asyncio.wait_for(asyncio.gather(*workers), 60)
        for client in (agent, customer):
            with contextlib.suppress(Exception):
                await client.close()


async def test_sigkill_under_transaction_load_leaves_nothing_in_flight_after_restart(
    tmp_path: Path, schema_url: str,
) -> None:
    """Five rounds of: a call, three workers asking and confirming look-ups and changes, the node killed
    with SIGKILL in the middle, the node restarted under its name.  After each start nothing is left
    in flight, every finished request has exactly one audit entry, every acknowledged confirmation is
    final; at the end ``counter audit verify`` passes."""
    acknowledged: list[int] = []
    conn = await asyncpg.connect(schema_url.split("?")[0], server_settings={"search_path": schema_url.split("=")[1]})
    node = Node("rk", tmp_path, schema_url)
    try:
        for round_no in range(5):
            node = Node("rk", tmp_path, schema_url)
            await node.start()
            left = await _in_flight_left(conn)
            assert left == [], left
            await _load_then_kill(node, f"r{round_no}", acknowledged)

        node = Node("rk", tmp_path, schema_url)
        await node.start()
        left = await _in_flight_left(conn)
        assert left == [], left
        rows = await conn.fetch("SELECT id, code, status, audit_seq FROM tx_requests WHERE status <> 'pending'")
        assert rows
        for row in rows:
            assert row["audit_seq"] is not None, dict(row)
            action = await conn.fetchval("SELECT action FROM audit_entries WHERE seq = $1", row["audit_seq"])
            assert action == f"transaction.{row['code']}", dict(row)
        entries = await conn.fetchval("SELECT count(*) FROM audit_entries WHERE action LIKE 'transaction.%'")
        assert entries == len(rows)  # exactly one each
        final = {r["id"] for r in rows}
        assert set(acknowledged) <= final
        node.stop()
        verify = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "counter.cli", "audit", "verify", env=node.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(verify.communicate(), 120)
        assert verify.returncode == 0, out.decode()
    finally:
        node.stop()
        await conn.close()
