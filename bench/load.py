"""Load and soak: simulated customers and agents through a whole counter call, for a fixed time.

Each customer: join token (HTTP), WebSocket hello, ``join`` with a demo line, waits in the queue,
answers the agent's SDP offer, confirms the transaction pushed to their screen (HTTP), waits for the
hang-up, and starts again.  Each agent: presence ``available``, accepts the offer, sends the SDP
offer, verifies the service password, requests ``datacap.set`` (HTTP), pushes the confirmation step,
waits for the customer's answer and hangs up.  SDP is a fixed text relayed through the server, or
real aiortc offers/answers with ``--aiortc`` (loopback only; no media flows either way).

The server is a ``counter serve`` subprocess on 127.0.0.1 (SQLite in a temp folder, rate limits off:
every simulated client shares one address) unless ``--url`` points at a running one.  Reports cycles
per second, latency percentiles per phase, errors by kind, and the server's RSS over time.

    python bench/load.py --customers 20 --agents 8 --duration 60
    python bench/load.py --customers 20 --agents 8 --duration 600 --json soak.json   # the soak
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import bench_env  # noqa: E402
from signaling import protocol as p  # noqa: E402
from signaling.client import SignalingClient  # noqa: E402

PHONES = ["13800138000", "13900139000", "13700137000", "13600136000"]
SERVICE_PASSWORD = "246810"
FAKE_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + "a=x-bench:" + "0" * 1500 + "\r\n"


@dataclass
class Stats:
    """What the run measured."""

    phases: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    cycles: int = 0
    rss_kb: list[tuple[float, int]] = field(default_factory=list)
    join_at: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase].append(seconds * 1000.0)

    def error(self, where: str, exc: BaseException) -> None:
        self.errors[f"{where}: {type(exc).__name__}: {str(exc)[:80]}"] += 1

    async def failed(self, where: str, exc: BaseException) -> None:
        """Count the error, and back off half a second before the next round."""
        self.error(where, exc)
        await asyncio.sleep(0.5)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- the server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def prepare_data(data_dir: Path, agents: int) -> None:
    """A migrated SQLite database with the demo data and ``agents`` bench agents (skills general, care)."""
    from counter.config import load_settings
    from counter.demo import load_demo
    from counter.users import Role, UserStore
    from storage import migrate, open_database

    settings = load_settings(config_file=data_dir / "none.toml", environ={}, tls=False, data_dir=data_dir)
    db = await open_database(settings.effective_database_url)
    try:
        await migrate(db)
        await load_demo(db, settings)
        users = UserStore(db)
        for i in range(agents):
            await users.create(f"bench{i}", f"bench{i}-load", Role.AGENT, f"Bench {i}", ["general", "care"])
    finally:
        await db.close()


#: Whom to trust over https: the installation's own CA by default (``--cafile`` for another).
TLS: ssl.SSLContext | None = None


def _http(**kwargs: Any) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=TLS or True), **kwargs)


def trust(cafile: Path | None) -> ssl.SSLContext:
    """The TLS context of the bench's clients: ``cafile``, else the local CA of the settings' cert_dir
    (what ``counter serve`` made), else the system's CAs."""
    if cafile is None:
        from counter.config import load_settings

        local = load_settings().cert_dir / "ca.crt"
        cafile = local if local.is_file() else None
    return ssl.create_default_context(cafile=str(cafile) if cafile else None)


def spawn_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = bench_env(data_dir / "none.toml", port, data_dir, COUNTER_SIGNALING_TICK_S="0.2",
                    COUNTER_REQUIRE_RECORDING="false")  # simulated calls open no witness leg
    log = (data_dir / "server.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "counter.cli", "serve"], env=env, stdout=log, stderr=log, cwd=ROOT)


async def wait_up(url: str, proc: subprocess.Popen[bytes] | None) -> None:
    async with _http() as http:
        for _ in range(600):
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def sample_rss(pid: int, stats: Stats, start: float, every: float) -> None:
    while True:
        with contextlib.suppress(OSError):
            stats.rss_kb.append((round(time.monotonic() - start, 1), rss_kb(pid)))
        await asyncio.sleep(every)


# --- the simulated people ------------------------------------------------------------------------------


async def sdp_offer(use_aiortc: bool) -> tuple[str, Any]:
    if not use_aiortc:
        return FAKE_SDP, None
    from signaling.peer import VideoPeer

    peer = VideoPeer()
    return await peer.offer(), peer


async def sdp_answer(offer: str, use_aiortc: bool) -> tuple[str, Any]:
    if not use_aiortc:
        return FAKE_SDP.replace("x-bench", "x-bench-answer"), None
    from signaling.peer import VideoPeer

    peer = VideoPeer()
    return await peer.answer(offer), peer


async def customer_loop(i: int, url: str, stats: Stats, deadline: float, use_aiortc: bool, within: float) -> None:
    phone = PHONES[i % len(PHONES)]
    async with _http() as http:
        while time.monotonic() < deadline:
            client: SignalingClient | None = None
            peer: Any = None
            t0 = time.monotonic()
            try:
                client = await SignalingClient.customer(http, url)
                t_hello = time.monotonic()
                stats.add("join_http_ws", t_hello - t0)
                stats.join_at[client.welcome.call_id if client.welcome and client.welcome.call_id else ""] = t_hello
                await client.send(p.Join(claimed_phone=phone))
                started = await client.expect(p.CallStarted, within=within)
                stats.add("queue_wait", time.monotonic() - t_hello)
                offer = await client.expect(p.Sdp, within=within, kind="offer")
                answer, peer = await sdp_answer(offer.sdp, use_aiortc)
                await client.send(p.Sdp(call_id=started.call_id, kind="answer", sdp=answer))
                step = await client.expect(p.PushStep, within=within, step="confirm")
                t_confirm = time.monotonic()
                async with http.post(
                    f"{url}/api/customer/counter/transactions/{step.params['transaction_id']}/confirm",
                    json={"accept": True}, headers={"X-Customer-Token": client.token or ""},
                ) as resp:
                    body = await resp.json()
                    if resp.status != 200 or body.get("status") != "done":
                        raise RuntimeError(f"confirm: HTTP {resp.status} {str(body)[:80]}")
                stats.add("customer_confirm_http", time.monotonic() - t_confirm)
                await client.send(p.StepResult(call_id=started.call_id, step_id=step.step_id, status="ok"))
                await client.expect(p.CallEnded, within=within)
                stats.add("customer_cycle", time.monotonic() - t0)
                stats.cycles += 1
            except Exception as exc:
                await stats.failed("customer", exc)
            finally:
                if peer is not None:
                    await peer.close()
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()


async def agent_loop(i: int, url: str, stats: Stats, stop: asyncio.Event, use_aiortc: bool, within: float) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with _http(cookie_jar=jar) as http:
        agent = await SignalingClient.staff(http, url, f"bench{i}", f"bench{i}-load")
        async with http.get(url + "/api/auth/me") as resp:
            csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
        try:
            while not stop.is_set():
                peer: Any = None
                try:
                    await agent.send(p.Presence(state="available"))
                    await agent.expect(p.PresenceAck, within=within, state="available")
                    offer = await _next_offer(agent, stop)
                    if offer is None:
                        break
                    t_offer = time.monotonic()
                    joined = stats.join_at.pop(offer.call_id, None)
                    if joined is not None:
                        stats.add("join_to_offer", t_offer - joined)
                    call_id = offer.call_id
                    await agent.send(p.Accept(call_id=call_id))
                    await agent.expect(p.CallStarted, within=within, call_id=call_id)
                    t_started = time.monotonic()
                    stats.add("accept_to_started", t_started - t_offer)
                    sdp, peer = await sdp_offer(use_aiortc)
                    await agent.send(p.Sdp(call_id=call_id, kind="offer", sdp=sdp))
                    answer = await agent.expect(p.Sdp, within=within, kind="answer")
                    t_sdp = time.monotonic()
                    stats.add("sdp_offer_answer", t_sdp - t_started)
                    if peer is not None:
                        await peer.accept(answer.sdp)
                    base = f"{url}/api/counter/sessions/{call_id}"
                    async with http.post(base + "/verify-password", json={"password": SERVICE_PASSWORD},
                                         headers=csrf) as resp:
                        if resp.status != 200:
                            raise RuntimeError(f"verify-password: HTTP {resp.status} {(await resp.text())[:80]}")
                    body = {"code": "datacap.set", "inputs": {"cap_mb": 1024 + i},
                            "idempotency_key": f"load-{call_id}"}
                    async with http.post(base + "/transactions", json=body, headers=csrf) as resp:
                        if resp.status != 202:
                            raise RuntimeError(f"transaction: HTTP {resp.status} {(await resp.text())[:80]}")
                        tid = (await resp.json())["id"]
                    t_tx = time.monotonic()
                    stats.add("verify_and_request_http", t_tx - t_sdp)
                    await agent.send(p.PushStep(call_id=call_id, step_id=f"c{tid}", step="confirm",
                                                params={"transaction_id": tid}))
                    await agent.expect(p.StepResult, within=within, step_id=f"c{tid}")
                    stats.add("push_to_confirmed", time.monotonic() - t_tx)
                    t_hang = time.monotonic()
                    await agent.send(p.Hangup(call_id=call_id))
                    await agent.expect(p.CallEnded, within=within, call_id=call_id)
                    stats.add("hangup", time.monotonic() - t_hang)
                    stats.add("agent_call", time.monotonic() - t_offer)
                except Exception as exc:
                    await stats.failed("agent", exc)
                finally:
                    if peer is not None:
                        await peer.close()
        finally:
            await agent.close()


async def _next_offer(agent: SignalingClient, stop: asyncio.Event) -> p.CallOffer | None:
    while not stop.is_set():
        with contextlib.suppress(Exception):
            return await agent.expect(p.CallOffer, within=1.0)
        if agent.closed:
            raise RuntimeError("agent socket closed")
    return None


# --- the run -------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.aiortc:
        from signaling.peer import loopback_only

        loopback_only()
    stats = Stats()
    proc: subprocess.Popen[bytes] | None = None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    url = args.url
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="rc-load-")
        data_dir = Path(tmp.name)
        await prepare_data(data_dir, args.agents)
        port = free_port()
        proc = spawn_server(data_dir, port)
        url = f"http://127.0.0.1:{port}"
    sampler: asyncio.Task[None] | None = None
    try:
        await wait_up(url, proc)
        start = time.monotonic()
        if proc is not None:
            sampler = asyncio.create_task(sample_rss(proc.pid, stats, start, args.rss_every))
        stop = asyncio.Event()
        agents = [asyncio.create_task(agent_loop(i, url, stats, stop, args.aiortc, args.within))
                  for i in range(args.agents)]
        await asyncio.sleep(1.0)
        deadline = time.monotonic() + args.duration
        await asyncio.gather(*(customer_loop(i, url, stats, deadline, args.aiortc, args.within)
                               for i in range(args.customers)))
        elapsed = time.monotonic() - start - 1.0
        stop.set()
        for result in await asyncio.gather(*agents, return_exceptions=True):
            if isinstance(result, BaseException):
                stats.error("agent_setup", result)
        if proc is not None:
            stats.rss_kb.append((round(time.monotonic() - start, 1), rss_kb(proc.pid)))
    finally:
        if sampler is not None:
            sampler.cancel()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()
    return report(args, stats, elapsed)


def report(args: argparse.Namespace, stats: Stats, elapsed: float) -> dict[str, Any]:
    rss = [kb for _, kb in stats.rss_kb]
    warm = [kb for t, kb in stats.rss_kb if t >= min(60.0, args.duration / 5)]
    half = len(warm) // 2
    return {
        "customers": args.customers,
        "agents": args.agents,
        "aiortc": args.aiortc,
        "duration_s": round(elapsed, 1),
        "cycles": stats.cycles,
        "cycles_per_s": round(stats.cycles / elapsed, 2) if elapsed > 0 else 0.0,
        "errors": sum(stats.errors.values()),
        "error_kinds": dict(stats.errors.most_common(10)),
        "latency_ms": {
            phase: {"n": len(v), "p50": round(pct(v, 50), 1), "p90": round(pct(v, 90), 1),
                    "p99": round(pct(v, 99), 1), "max": round(max(v), 1)}
            for phase, v in sorted(stats.phases.items()) if v
        },
        "server_rss_mb": {
            "start": round(rss[0] / 1024, 1) if rss else None,
            "after_warmup": round(warm[0] / 1024, 1) if warm else None,
            "end": round(rss[-1] / 1024, 1) if rss else None,
            "max": round(max(rss) / 1024, 1) if rss else None,
            "first_half_median": round(statistics.median(warm[:half]) / 1024, 1) if half else None,
            "second_half_median": round(statistics.median(warm[half:]) / 1024, 1) if half else None,
        },
        "rss_samples_mb": [(t, round(kb / 1024, 1)) for t, kb in stats.rss_kb[:: max(1, len(stats.rss_kb) // 40)]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10, help="simulated customers (each loops calls)")
    parser.add_argument("--agents", type=int, default=4, help="simulated agents")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds customers keep starting calls")
    parser.add_argument("--aiortc", action="store_true", help="real aiortc SDP offers/answers (loopback only)")
    parser.add_argument("--url", default=None, help="a running server (default: spawn one on loopback)")
    parser.add_argument("--cafile", type=Path, default=None,
                        help="CA to trust for an https --url (default: the local CA in the settings' cert_dir)")
    parser.add_argument("--within", type=float, default=60.0, help="per-step timeout, seconds")
    parser.add_argument("--rss-every", type=float, default=5.0, help="RSS sampling period, seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    global TLS
    TLS = trust(args.cafile)
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
