"""Scale-out: one node vs two nodes behind HAProxy (round-robin, no stickiness), with a bare relay
behind the same HAProxy as the baseline of the same run.

    python bench/scale_out.py --pairs 100 --joins 240 --seconds 10 --rate 1

For each node count (``--nodes``, default 1 2) it starts a :class:`tests.hardening.balancer.Cluster`
(private PostgreSQL and Redis, the nodes, HAProxy; all in one network namespace with only ``lo``),
then through HAProxy:

* **calls held**: ``--pairs`` bench agents log in and go available, as many customers join; every
  call is routed, accepted and started (customer and agent often on different nodes: their relay then
  goes over Redis).  Reported: calls connected of those asked, and the time to route them all;
* **relay**: on every held call both sides send trickled ICE candidates (the relay path of call set-up)
  at ``--rate`` a second each, open loop, for ``--seconds``: latency p50/p99; then a closed loop (one
  message in flight per call) for capacity, with the nodes' CPU per relayed message;
* **joins/s**: ``--joins`` customers at once (token, WebSocket, hello, join, first queue status);
  joins per second until the last is queued, and how many failed.

The baseline runs the same relay loops through the same HAProxy to a bare aiohttp relay (one process,
frames forwarded unchanged to the paired socket: ``bench/signaling.py``'s).  Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import cpu_s, route_all  # noqa: E402
from bench.signaling import BARE_RELAY, _recv, _send_bare, run_loop, run_open  # noqa: E402
from signaling import protocol as p  # noqa: E402
from signaling.client import SignalingClient  # noqa: E402
from tests.hardening.balancer import Balancer, Cluster  # noqa: E402
from tests.hardening.conftest import free_port  # noqa: E402

Sides = list[Any]


class _Backend:
    """What :class:`Balancer` needs of a backend: a name and a loopback port."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port


async def relay_numbers(sides: Sides, seconds: float, rate: float, pids: list[int]) -> dict[str, Any]:
    """Open loop at ``rate`` (latency), then closed loop (capacity, CPU per message over ``pids``)."""
    opened = await run_open(sides, seconds, rate)
    await asyncio.sleep(0.5)
    before = sum(cpu_s(pid) for pid in pids)
    closed = await run_loop(sides, seconds)
    used = sum(cpu_s(pid) for pid in pids) - before
    relayed = closed.get("messages", 0) * (seconds + 1) / seconds  # the CPU span includes the 1 s warm-up
    return {"p50_ms": opened.get("p50_ms"), "p99_ms": opened.get("p99_ms"), "open_msgs_per_s": opened.get("msgs_per_s"),
            "capacity_msgs_per_s": closed.get("msgs_per_s"),
            "cpu_us_per_msg": round(used * 1e6 / max(1.0, relayed), 1)}


def _spawn_bare(log: Path, port: int) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", BARE_RELAY, str(port)], stdout=out, stderr=out)


async def bare(tmp: Path, pairs: int, seconds: float, rate: float) -> dict[str, Any]:
    """The bare relay behind HAProxy (run on a cluster's loop: the same namespace)."""
    port = free_port()
    proc = _spawn_bare(tmp / "bare.log", port)
    (tmp / "bare").mkdir(exist_ok=True)
    lb = Balancer(tmp / "bare", [_Backend("bare", port)], check_path=None)  # type: ignore[list-item]
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
        lb.start()
        ws_base = lb.url.replace("http", "ws", 1)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            sockets = [(await http.ws_connect(f"{ws_base}/pair/{i}/a"), await http.ws_connect(f"{ws_base}/pair/{i}/b"))
                       for i in range(pairs)]
            sides = [(_recv(ws), _send_bare(ws, f"c{i}"), starts)
                     for i, (a, b) in enumerate(sockets) for ws, starts in ((a, True), (b, False))]
            result = await relay_numbers(sides, seconds, rate, [proc.pid])
            for a, b in sockets:
                await a.close()
                await b.close()
            return result
    finally:
        lb.stop()
        proc.terminate()
        proc.wait(10)


async def make_agents(cluster: Cluster, n: int) -> None:
    """Bench agents in the cluster's database (cheap password hashes: logins are not measured)."""
    from argon2 import PasswordHasher

    from counter.users import Role, UserStore
    from storage import open_database

    db = await open_database(cluster.pg.url)
    users = UserStore(db, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    for i in range(n):
        await users.create(f"bench{i}", "bench-pass", Role.AGENT, f"Bench {i}", ["general"])
    await db.close()


async def _queued(http: aiohttp.ClientSession, url: str) -> SignalingClient:
    customer = await SignalingClient.customer(http, url)
    await customer.send(p.Join())
    await customer.expect(p.QueueStatus, within=120)
    return customer


async def nodes_run(cluster: Cluster, pairs: int, joins: int, seconds: float, rate: float) -> dict[str, Any]:
    await make_agents(cluster, pairs)
    base = cluster.url
    pids = [n.proc.pid for n in cluster.nodes if n.proc is not None]
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     cookie_jar=aiohttp.DummyCookieJar()) as http:
        async def agent(i: int) -> SignalingClient:
            login = {"username": f"bench{i}", "password": "bench-pass"}
            async with http.post(base + "/api/auth/login", json=login) as r:
                if r.status != 200:
                    raise SystemExit(f"bench{i} cannot log in: HTTP {r.status} {await r.text()}")
                cookie = r.cookies["rc_session"].value
            client = await SignalingClient.connect(http, base, staff_cookie=cookie)
            await client.send(p.Presence(state="available"))
            return client

        agents: list[SignalingClient] = []
        for start in range(0, pairs, 20):
            agents += await asyncio.gather(*(agent(i) for i in range(start, min(pairs, start + 20))))
        customers = [await SignalingClient.customer(http, base) for _ in range(pairs)]
        t0 = time.perf_counter()
        by_call = await route_all(customers, agents, return_exceptions=True)
        started = await asyncio.gather(*(c.expect(p.CallStarted, within=120) for c in customers),
                                       return_exceptions=True)
        held = sum(1 for s in started if isinstance(s, p.CallStarted))
        out["calls"] = {"asked": pairs, "held": held, "route_all_s": round(time.perf_counter() - t0, 2),
                        "cross_node": sum(1 for c in customers if c.welcome and c.welcome.call_id in by_call
                                          and by_call[c.welcome.call_id].welcome is not None
                                          and c.welcome.node != by_call[c.welcome.call_id].welcome.node)}  # type: ignore[union-attr]
        for client in [*customers, *agents]:
            client._reader.cancel()  # the loops read the raw sockets, as the bare run does
        await asyncio.sleep(0.1)
        sides = []
        for customer in customers:
            call_id = customer.welcome.call_id if customer.welcome else None
            if call_id in by_call:
                sides.append((_recv(customer.ws), _send_bare(customer.ws, call_id), True))
                sides.append((_recv(by_call[call_id].ws), _send_bare(by_call[call_id].ws, call_id), False))
        out["relay"] = await relay_numbers(sides, seconds, rate, pids)

        # Agents stay in their calls: the burst's customers wait in the queue, offered to nobody.
        t1 = time.perf_counter()
        burst = await asyncio.gather(*(_queued(http, base) for _ in range(joins)), return_exceptions=True)
        took = time.perf_counter() - t1
        ok = [c for c in burst if isinstance(c, SignalingClient)]
        errors = Counter(type(e).__name__ + ": " + str(e)[:60] for e in burst if not isinstance(e, SignalingClient))
        out["joins"] = {"asked": joins, "queued": len(ok), "joins_per_s": round(len(ok) / took, 1),
                        "all_queued_s": round(took, 2), "errors": dict(errors)}
        for client in [*ok, *customers, *agents]:
            await client.ws.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--joins", type=int, default=240)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1.0, help="open-loop messages a second per socket")
    args = parser.parse_args()

    env = {"COUNTER_LOG_LEVEL": "WARNING", "COUNTER_SIGNALING_RATE_PER_S": "100000",
           "COUNTER_SIGNALING_RATE_BURST": "100000", "COUNTER_SIGNALING_OFFER_TIMEOUT_S": "120",
           "COUNTER_SIGNALING_TICK_S": "0.5", "COUNTER_SIGNALING_STATUS_INTERVAL_S": "3",
           "COUNTER_SIGNALING_PRESENCE_TTL_S": "15", "COUNTER_WRAP_UP_S": "0"}
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                              "machine": platform.machine(), "load_avg": os.getloadavg()[0], "args": vars(args),
                              "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.nodes:
            where = Path(tmp) / f"n{count}"
            where.mkdir()
            cluster = Cluster(where, count, **env)
            try:
                cluster.start()
                report["isolated"] = cluster.isolated
                if not report["runs"]:
                    report["bare"] = cluster.run(bare(where, args.pairs, args.seconds, args.rate), timeout=600)
                    print(json.dumps({"bare": report["bare"]}), file=sys.stderr, flush=True)
                run = cluster.run(nodes_run(cluster, args.pairs, args.joins, args.seconds, args.rate), timeout=900)
                report["runs"].append({"nodes": count, **run})
                print(json.dumps(report["runs"][-1]), file=sys.stderr, flush=True)
            finally:
                cluster.stop()
    print(table(report))
    print(json.dumps(report, indent=2))


def table(report: dict[str, Any]) -> str:
    b = report["bare"]
    rows = ["| behind HAProxy | calls held | relay p50 ms | relay p99 ms | relay capacity msg/s | CPU µs/msg "
            "| joins/s (queued/asked) |", "|---|---|---|---|---|---|---|",
            f"| bare relay (baseline) | {report['args']['pairs']} pairs | {b['p50_ms']} | {b['p99_ms']} "
            f"| {b['capacity_msgs_per_s']} | {b['cpu_us_per_msg']} | - |"]
    for run in report["runs"]:
        r, c, j = run["relay"], run["calls"], run["joins"]
        rows.append(f"| {run['nodes']} node(s) | {c['held']}/{c['asked']} ({c['cross_node']} across nodes) "
                    f"| {r['p50_ms']} | {r['p99_ms']} | {r['capacity_msgs_per_s']} | {r['cpu_us_per_msg']} "
                    f"| {j['joins_per_s']} ({j['queued']}/{j['asked']}) |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
