"""``counter serve`` processes for fault tests: spawned on loopback, killed or stopped at will."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import SHARED
from tests.hardening.conftest import free_port


def serve_env(config: Path, port: int, data_dir: Path, **env: str) -> dict[str, str]:
    """The environment of a plain-HTTP ``counter serve`` on 127.0.0.1:``port``: this process's own,
    the config file ``config`` (need not exist), data in ``data_dir``; ``env`` on top."""
    return {**os.environ, "COUNTER_CONFIG": str(config), "COUNTER_TLS": "false", "COUNTER_HOST": "127.0.0.1",
            "COUNTER_PORT": str(port), "COUNTER_DATA_DIR": str(data_dir), **env}


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to ``proc`` if it still runs; SIGKILL if it has not ended ``grace`` seconds later."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def until_healthy(url: str, proc: subprocess.Popen[bytes], tries: int = 600) -> str | None:
    """Poll ``url``/healthz every 0.1 s until it answers 200 (None) or ``proc`` exits or ``tries``
    polls pass (why not, in words)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(tries):
            if proc.poll() is not None:
                return f"exited with {proc.returncode}"
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return None
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    return "did not come up"


class Node:
    """One ``counter serve`` process (plain HTTP on 127.0.0.1), its log in ``tmp/<name>.log``."""

    #: What the process runs, after the interpreter.
    command: tuple[str, ...] = ("-m", "counter.cli", "serve")

    def __init__(self, name: str, tmp: Path, database_url: str, redis_url: str = "", prefix: str = "rc",
                 data_dir: Path | None = None, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        self.env = serve_env(tmp / "none.toml", self.port, data_dir or tmp / "data", **{
            "COUNTER_DATABASE_URL": database_url,
            "COUNTER_REDIS_URL": redis_url,
            "COUNTER_NODE_ID": f"node-{name}",
            "COUNTER_SIGNALING_REDIS_PREFIX": prefix,
            "COUNTER_SIGNALING_TICK_S": "0.1",
            "COUNTER_SIGNALING_STATUS_INTERVAL_S": "0.5",
            "COUNTER_SIGNALING_RECONNECT_GRACE_S": "30",
            # Above the Redis routing lock's 5 s TTL: a node killed holding the lock stalls every
            # node's heartbeat that long, and a lapsed presence is not re-created by the heartbeat.
            "COUNTER_SIGNALING_PRESENCE_TTL_S": "6",
            "COUNTER_LOG_LEVEL": "INFO",
            # Load and fault tests run requests without a witness leg; pass "true" to test the rule.
            "COUNTER_REQUIRE_RECORDING": "false",
            **env,
        })
        # the service guesses no path itself: the shared models and demo photos are named
        for key, folder in (("COUNTER_MODELS_DIR", SHARED / "models"), ("COUNTER_DEMO_FACES_DIR", SHARED / "faces")):
            if key not in self.env and folder.is_dir():
                self.env[key] = str(folder)
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, *self.command], env=self.env,
                                         stdout=log, stderr=log)

    async def start(self) -> None:
        self.spawn()
        assert self.proc is not None
        why = await until_healthy(self.url, self.proc)
        if why is not None:
            raise AssertionError(f"{self.name} {why}:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye to anyone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: a graceful stop (SIGKILL after 15 s)."""
        if self.proc is not None:
            stop_process(self.proc, 15)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class LoopbackNode(Node):
    """A node whose WebRTC peers (the witness) gather host candidates on 127.0.0.1 only, as the test
    process does: for tests that place media on a node (:mod:`tests.hardening.loopback_serve`)."""

    command = ("-m", "tests.hardening.loopback_serve")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        root = str(Path(__file__).resolve().parents[2])  # where ``tests`` is importable from, whatever the cwd
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, self.env.get("PYTHONPATH"))))
