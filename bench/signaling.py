"""Signaling benchmark: relay latency and throughput vs a bare aiohttp WebSocket relay; call set-up time.

    python bench/signaling.py --pairs 100 500 --seconds 10 --calls 5

For each ``--pairs`` value it starts ``counter serve`` (plain HTTP, SQLite, in-process bus) in a
subprocess, logs in that many bench agents, queues as many customers, lets routing put every pair
through, then runs a closed loop for ``--seconds``: each customer sends a message carrying a send
time (``--kind ice``, the default: a trickled ICE candidate, the pure relay path; ``--kind chat``: a
chat line, which is also a durable audit entry), its agent answers in kind, and so on (one message
in flight per pair).  The same loop
runs against a bare aiohttp relay (subprocess; frames forwarded unchanged to the paired socket): the
framework's limit.  Then ``--calls`` calls are placed between two aiortc peers through the server and
compared with two peers connected directly in-process (offer to connected).  All on loopback.
Prints a JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import bench_env, cpu_s, free_port, make_agents, route_all, spawn, stop, wait_up  # noqa: E402
from signaling import protocol as p  # noqa: E402
from signaling.client import SignalingClient  # noqa: E402

BARE_RELAY = r'''
import sys
from aiohttp import web, WSMsgType

peers = {}

async def relay(request):
    ws = web.WebSocketResponse(max_msg_size=256 * 1024)
    await ws.prepare(request)
    pair, side = request.match_info["pair"], request.match_info["side"]
    peers[(pair, side)] = ws
    other = (pair, "b" if side == "a" else "a")
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            target = peers.get(other)
            if target is not None:
                await target.send_str(msg.data)
    peers.pop((pair, side), None)
    return ws

app = web.Application()
app.router.add_get("/pair/{pair}/{side}", relay)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
'''







class Loop:
    """The closed loop: latencies (ms) of every delivered message and how many were delivered."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.running = True

    async def side(self, recv: Callable[[], Awaitable[str | None]], send: Callable[[float], Awaitable[None]],
                   starts: bool) -> None:
        if starts:
            await send(time.perf_counter())
        while self.running:
            text = await recv()
            if text is None:
                return
            sent = sent_at(text)
            if sent is None:
                continue
            now = time.perf_counter()
            self.latencies.append((now - sent) * 1000.0)
            if self.running:
                await send(now)

    async def measure(self, tasks: list[asyncio.Task[None]], seconds: float) -> dict[str, float]:
        """What ``tasks`` deliver over ``seconds`` after a second's warm-up; then they are stopped."""
        await asyncio.sleep(1.0)  # warm-up
        self.latencies.clear()
        await asyncio.sleep(seconds)
        self.running = False
        result = self.report(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return result

    def report(self, seconds: float) -> dict[str, float]:
        lat = sorted(self.latencies)
        if not lat:
            return {"msgs_per_s": 0.0}
        return {
            "msgs_per_s": round(len(lat) / seconds, 1),
            "p50_ms": round(lat[len(lat) // 2], 3),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3),
            "messages": len(lat),
        }


async def run_loop(sides: list[tuple[Callable[[], Awaitable[str | None]], Callable[[float], Awaitable[None]], bool]],
                   seconds: float) -> dict[str, float]:
    loop = Loop()
    tasks = [asyncio.create_task(loop.side(r, s, starts)) for r, s, starts in sides]
    return await loop.measure(tasks, seconds)


async def run_open(sides: list[tuple[Callable[[], Awaitable[str | None]], Callable[[float], Awaitable[None]], bool]],
                   seconds: float, rate: float) -> dict[str, float]:
    """Open loop: every socket sends ``rate`` messages a second regardless of replies (latency, not capacity)."""
    loop = Loop()

    async def sender(send: Callable[[float], Awaitable[None]]) -> None:
        await asyncio.sleep(random.random() / rate)
        while loop.running:
            await send(time.perf_counter())
            await asyncio.sleep(1.0 / rate)

    async def receiver(recv: Callable[[], Awaitable[str | None]]) -> None:
        while loop.running:
            text = await recv()
            if text is None:
                return
            sent = sent_at(text)
            if sent is not None:
                loop.latencies.append((time.perf_counter() - sent) * 1000.0)

    tasks = [asyncio.create_task(sender(s)) for _, s, _ in sides]
    tasks += [asyncio.create_task(receiver(r)) for r, _, _ in sides]
    return await loop.measure(tasks, seconds)



async def measure(sides: list[tuple[Callable[[], Awaitable[str | None]], Callable[[float], Awaitable[None]], bool]],
                  seconds: float, rate: float, pid: int) -> dict[str, dict[str, float]]:
    """Capacity (closed loop, one message in flight per pair), then latency at ``rate`` msgs/s a socket.

    ``server_cpu_us_per_msg`` is the server process's CPU time per relayed message: unlike rates and
    latencies it hardly moves when other work shares the machine."""
    before = cpu_s(pid)
    closed = await run_loop(sides, seconds)
    used = cpu_s(pid) - before
    relayed = closed.get("messages", 0) * (seconds + 1) / seconds  # the CPU span includes the 1 s warm-up
    closed["server_cpu_us_per_msg"] = round(used * 1e6 / max(1.0, relayed), 1)
    await asyncio.sleep(0.5)
    opened = await run_open(sides, seconds, rate)
    return {"closed": closed, "open": opened}


async def bench_bare(pairs: int, seconds: float, rate: float, tmp: Path) -> dict[str, Any]:
    port = free_port()
    proc = spawn([sys.executable, "-c", BARE_RELAY, str(port)], dict(os.environ), tmp / "bare.log")
    try:
        await wait_up(f"http://127.0.0.1:{port}/", proc)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            sockets = []
            for i in range(pairs):
                a = await http.ws_connect(f"ws://127.0.0.1:{port}/pair/{i}/a")
                b = await http.ws_connect(f"ws://127.0.0.1:{port}/pair/{i}/b")
                sockets.append((a, b))
            sides = []
            for i, (a, b) in enumerate(sockets):
                for ws, starts in ((a, True), (b, False)):
                    sides.append((_recv(ws), _send_bare(ws, f"c{i}"), starts))
            result = await measure(sides, seconds, rate, proc.pid)
            for a, b in sockets:
                await a.close()
                await b.close()
            return result
    finally:
        stop(proc)


#: What the relay loop sends: ``ice`` (a trickled candidate: the pure relay path of call set-up) or
#: ``chat`` (a chat line: relayed and, since the auditor's timeline needs it, a durable audit entry).
KIND = "ice"
_CANDIDATE = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0 ufrag bnch at "


def sent_at(text: str) -> float | None:
    """The send time a relayed message carries (``at`` of a chat, the candidate's tail of an ICE)."""
    msg = json.loads(text)
    if msg.get("type") == "ice":
        candidate = str(msg.get("candidate", ""))
        return float(candidate.rsplit(" ", 1)[1]) if candidate.startswith(_CANDIDATE) else None
    at = msg.get("at")
    return float(at) if at is not None else None


def _recv(ws: aiohttp.ClientWebSocketResponse) -> Callable[[], Awaitable[str | None]]:
    marker = f'"type":"{KIND}"'
    async def recv() -> str | None:
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                return None
            if marker in msg.data.replace(" ", ""):
                return str(msg.data)

    return recv


def _send_bare(ws: aiohttp.ClientWebSocketResponse, call_id: str) -> Callable[[float], Awaitable[None]]:
    async def send(at: float) -> None:
        if KIND == "ice":
            message: p.Ice | p.Chat = p.Ice(call_id=call_id, candidate=f"{_CANDIDATE}{at!r}", sdp_mid="0",
                                       sdp_mline_index=0)
        else:
            message = p.Chat(call_id=call_id, text="1380013800", at=at)
        await ws.send_str(p.dump(message))

    return send


async def bench_server(pairs: int, seconds: float, rate: float, calls: int, tmp: Path) -> dict[str, Any]:
    data = tmp / f"server-{pairs}"
    await make_agents(data, pairs)
    port = free_port()
    # no rate limit: a thousand logins and sockets from one address on purpose
    env = bench_env(tmp / "none.toml", port, data, COUNTER_SIGNALING_RATE_PER_S="100000",
                    COUNTER_SIGNALING_RATE_BURST="100000", COUNTER_SIGNALING_OFFER_TIMEOUT_S="120",
                    COUNTER_REDIS_URL="")
    proc = spawn([sys.executable, "-m", "counter.cli", "serve"], env, tmp / f"server-{pairs}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_up(base + "/healthz", proc)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as cust_http:
            t0 = time.perf_counter()
            async def one_agent(i: int) -> tuple[aiohttp.ClientSession, SignalingClient]:
                # one HTTP session for every socket, as in the bare run; the staff cookie goes in a header
                for attempt in range(5):
                    async with cust_http.post(base + "/api/auth/login",
                                              json={"username": f"bench{i}", "password": "bench-pass"}) as resp:
                        if resp.status == 200:
                            cookie = resp.cookies["rc_session"].value
                            break
                        why = f"HTTP {resp.status} {await resp.text()}"
                    await asyncio.sleep(0.2 * (attempt + 1))
                else:
                    raise SystemExit(f"bench{i} cannot log in: {why}")
                return cust_http, await SignalingClient.connect(cust_http, base, staff_cookie=cookie)

            agents: list[tuple[aiohttp.ClientSession, SignalingClient]] = []
            customers: list[SignalingClient] = []
            for start in range(0, pairs, 20):
                batch = range(start, min(pairs, start + 20))
                agents += await asyncio.gather(*(one_agent(i) for i in batch))
                customers += await asyncio.gather(*(SignalingClient.customer(cust_http, base) for _ in batch))
            for _, agent in agents:
                await agent.send(p.Presence(state="available"))
            connected_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            by_call = await route_all(customers, [agent for _, agent in agents])
            await asyncio.gather(*(c.expect(p.CallStarted, within=120) for c in customers))
            routed_s = time.perf_counter() - t1
            sides = []
            for client in [*customers, *by_call.values()]:
                client._reader.cancel()  # the loop reads the raw sockets, exactly like the bare run
            await asyncio.sleep(0.1)
            for customer in customers:
                assert customer.welcome is not None and customer.welcome.call_id is not None
                call_id = customer.welcome.call_id
                agent = by_call[call_id]
                sides.append((_recv(customer.ws), _send_bare(customer.ws, call_id), True))
                sides.append((_recv(agent.ws), _send_bare(agent.ws, call_id), False))
            relay = await measure(sides, seconds, rate, proc.pid)
            for client in customers:
                await client.close()
            for _, agent in agents:
                await agent.close()
        setup = await bench_setup(base, calls)
        return {"connections": 2 * pairs, "connect_s": round(connected_s, 2), "route_all_s": round(routed_s, 2),
                "relay": relay, "setup": setup}
    finally:
        stop(proc)


async def bench_setup(base: str, calls: int) -> dict[str, Any]:
    """Offer-to-connected for calls through the server vs two peers connected directly."""
    from signaling.peer import direct_call
    from signaling.probe import place_call

    through, direct = [], []
    for _ in range(calls):
        result = await place_call(base, "bench0", "bench-pass", frames=5, within=30)
        through.append(result["setup_ms"])
        setup_ms, _ = await direct_call(frames=5)
        direct.append(setup_ms)
    return {
        "calls": calls,
        "through_server_ms_median": round(statistics.median(through), 1),
        "direct_ms_median": round(statistics.median(direct), 1),
        "overhead_ms_median": round(statistics.median(through) - statistics.median(direct), 1),
        "through_server_ms": [round(x, 1) for x in through],
        "direct_ms": [round(x, 1) for x in direct],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1.0, help="open-loop messages a second per socket")
    parser.add_argument("--kind", choices=["ice", "chat"], default="ice",
                        help="relay ICE candidates (pure relay) or chat lines (relay + a durable audit entry each)")
    args = parser.parse_args()
    global KIND
    KIND = args.kind

    from signaling.peer import loopback_only

    loopback_only()
    report: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "kind": KIND, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for pairs in args.pairs:
            bare = await bench_bare(pairs, args.seconds, args.rate, Path(tmp))
            ours = await bench_server(pairs, args.seconds, args.rate, args.calls, Path(tmp))
            closed_bare, closed_ours = bare["closed"], ours["relay"]["closed"]
            ratio = closed_bare["msgs_per_s"] / closed_ours["msgs_per_s"] if closed_ours.get("msgs_per_s") else None
            cpu_ratio = closed_ours["server_cpu_us_per_msg"] / max(0.1, closed_bare["server_cpu_us_per_msg"])
            report["runs"].append({
                "pairs": pairs, "bare": bare, "server": ours,
                "capacity_ratio_bare_over_server": round(ratio, 2) if ratio else None,
                "cpu_per_msg_ratio_server_over_bare": round(cpu_ratio, 2),
                "open_p99_ms": {"bare": bare["open"].get("p99_ms"), "server": ours["relay"]["open"].get("p99_ms")},
            })
            print(json.dumps(report["runs"][-1]), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
