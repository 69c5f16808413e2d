"""The Redis bus against the real Redis, and two real ``counter serve`` processes sharing one queue."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from signaling.bus import RedisBus
from signaling.probe import place_call
from signaling.state import AgentRecord, CallRecord, CallStatus
from tests.hardening.nodes import serve_env, until_healthy
from tests.signaling.conftest import REDIS_URL


async def test_two_buses_share_state_and_route(prefix: str) -> None:
    a, b = RedisBus(REDIS_URL, "node-a", prefix), RedisBus(REDIS_URL, "node-b", prefix)
    got: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def on_b(key: str, text: str) -> None:
        await got.put((key, text))

    async def on_a(key: str, text: str) -> None:
        raise AssertionError("nothing is connected to node a")

    await a.start(on_a)
    await b.start(on_b)
    try:
        await b.register("agent:agent1")
        assert await a.send("agent:agent1", '{"type":"ping"}')
        assert await asyncio.wait_for(got.get(), 5) == ("agent:agent1", '{"type":"ping"}')
        assert not await a.send("agent:nobody", "{}")

        for i, score in enumerate([30.0, 10.0, 20.0]):
            await a.enqueue(CallRecord(call_id=f"c{i}", lane="general", score=score))
        assert [cid for cid, _ in await b.lane("general")] == ["c1", "c2", "c0"]
        assert await b.head_score("general") == 9.0
        call = await b.get_call("c1")
        assert call is not None
        call.status = CallStatus.IN_CALL
        assert await b.dequeue(call)
        assert not await a.dequeue(call)
        assert (await a.get_call("c1") or call).status is CallStatus.IN_CALL
        await a.delete_call("c0")
        assert [cid for cid, _ in await a.lane("general")] == ["c2"]

        await a.put_agent(AgentRecord(id="agent1", role="agent", state="available"), ttl_s=0.2)
        assert [x.id for x in await b.agents()] == ["agent1"]
        await asyncio.sleep(0.35)
        assert await b.agents() == []  # presence lapses without a heartbeat

        order: list[str] = []

        async def critical(bus: RedisBus, name: str) -> None:
            async with bus.lock():
                order.append(f"{name}+")
                await asyncio.sleep(0.05)
                order.append(f"{name}-")

        await asyncio.gather(critical(a, "a"), critical(b, "b"))
        assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
    finally:
        await a.close()
        await b.close()


async def test_a_small_pool_makes_a_burst_wait_instead_of_failing(prefix: str) -> None:
    bus = RedisBus(REDIS_URL, "node-a", prefix, max_connections=3, pool_timeout_s=10.0)
    await bus.start(lambda key, text: asyncio.sleep(0))  # the subscription holds one of the three
    try:
        calls = [CallRecord(call_id=f"c{i}", lane="general", score=float(i)) for i in range(200)]
        await asyncio.gather(*(bus.enqueue(c) for c in calls))
        assert len(await bus.lane("general")) == 200
        pool = bus.redis.connection_pool
        assert len(pool._in_use_connections) + len(pool._available_connections) <= 3  # type: ignore[attr-defined]
    finally:
        await bus.close()


async def test_a_key_left_registered_without_its_connection_is_released_on_the_second_pass(prefix: str) -> None:
    bus = RedisBus(REDIS_URL, "node-a", prefix)
    await bus.start(lambda key, text: asyncio.sleep(0))
    try:
        await bus.register("customer:kept")
        await bus.register("customer:lost")
        bus.local.discard("customer:lost")  # its unregistering never reached Redis (an outage)
        assert await bus.stale_keys() == []  # once could be a key between registering and the hash
        assert await bus.stale_keys() == ["customer:lost"]
        assert await bus.connected_keys() == {"customer:kept"}
    finally:
        await bus.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``counter serve`` in its own process, output to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "counter.cli", "serve"], env=env, stdout=log, stderr=log)


async def test_customer_on_node_a_served_by_agent_on_node_b(tmp_path: Path, prefix: str) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for name in ("a", "b"):
            port = _free_port()
            env = serve_env(tmp_path / "none.toml", port, tmp_path / name, COUNTER_REDIS_URL=REDIS_URL,
                            COUNTER_NODE_ID=f"node-{name}", COUNTER_SIGNALING_REDIS_PREFIX=prefix,
                            COUNTER_SIGNALING_TICK_S="0.1", COUNTER_LOG_LEVEL="WARNING")
            procs.append(_spawn(env, tmp_path / f"{name}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            why = await until_healthy(url, proc, tries=300)
            assert why is None, f"{url} {why}"
        result = await place_call(urls[0], "agent2", "agent2-demo", agent_url=urls[1], frames=10, within=30)
        assert (result["customer_node"], result["agent_node"]) == ("node-a", "node-b")
        assert result["frames_received"] >= 10 and result["frames_received_agent"] >= 10

        probe = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "counter.cli", "probe", "call", "--url", urls[1], "--agent-url", urls[0],
            "--user", "agent1", "--password", "agent1-demo", "--frames", "5",
            env={**os.environ, "COUNTER_CONFIG": str(tmp_path / "none.toml")},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await probe.communicate()
        report = json.loads(out.decode().strip().splitlines()[-1])
        assert probe.returncode == 0, report
        assert report["ok"] and report["frames_received"] >= 5 and report["setup_ms"] > 0
        assert (report["customer_node"], report["agent_node"]) == ("node-b", "node-a")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
