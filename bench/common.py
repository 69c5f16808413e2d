"""What the benchmarks share: a ``counter serve`` of their own on loopback (its environment, start,
wait and stop), bench agents in its database, calls routed to them, and a process's CPU time."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

import aiohttp

from signaling import protocol as p
from signaling.client import SignalingClient
from tests.hardening.nodes import serve_env, stop_process

ROOT = Path(__file__).resolve().parents[1]
#: The server's rate-limit rules: all off for a benchmark, which sends from one address on purpose.
RATE_RULES = ("LOGIN", "JOIN", "WS", "IDENTITY", "VERIFY", "API")


def bench_env(config: Path, port: int, data_dir: Path, **env: str) -> dict[str, str]:
    """:func:`tests.hardening.nodes.serve_env` with warnings only in the log and no rate limit; ``env`` on top."""
    return serve_env(config, port, data_dir, COUNTER_LOG_LEVEL="WARNING",
                     **{f"COUNTER_RATELIMIT_{rule}": "off" for rule in RATE_RULES}, **env)


def free_port() -> int:
    """A free loopback port (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``url`` answers below 500 (one minute at most); exit if ``proc`` ends first."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``args`` run from the repository's root, output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=out, cwd=ROOT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    stop_process(proc, 15)


async def make_agents(data_dir: Path, n: int) -> None:
    """Bench agents in a fresh SQLite database (cheap password hashes: logins are not measured)."""
    from argon2 import PasswordHasher

    from counter.users import Role, UserStore
    from storage import migrate, open_database

    os.makedirs(data_dir, exist_ok=True)
    db = await open_database(f"sqlite:///{data_dir / 'counter.db'}")
    await migrate(db)
    users = UserStore(db, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    for i in range(n):
        await users.create(f"bench{i}", "bench-pass", Role.AGENT, f"Bench {i}", ["general"])
    await db.close()


async def route_all(customers: list[SignalingClient], agents: list[SignalingClient],
                    *, return_exceptions: bool = False) -> dict[str, SignalingClient]:
    """Every customer joins the queue and every agent accepts the call it is offered; the agents by
    call id (``return_exceptions``: an agent offered nothing is left out instead of failing the run)."""
    for customer in customers:
        await customer.send(p.Join())
    by_call: dict[str, SignalingClient] = {}

    async def answer(agent: SignalingClient) -> None:
        offer = await agent.expect(p.CallOffer, within=120)
        await agent.send(p.Accept(call_id=offer.call_id))
        await agent.expect(p.CallStarted, within=120)
        by_call[offer.call_id] = agent

    await asyncio.gather(*(answer(agent) for agent in agents), return_exceptions=return_exceptions)
    return by_call


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
