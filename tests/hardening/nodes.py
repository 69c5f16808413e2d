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
        self.env = {
            **os.environ,
            "COUNTER_CONFIG": str(tmp / "none.toml"),
            "COUNTER_TLS": "false",
            "COUNTER_HOST": "127.0.0.1",
            "COUNTER_PORT": str(self.port),
            "COUNTER_DATA_DIR": str(data_dir or tmp / "data"),
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
        }
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
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    async with http.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not come up:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye to anyone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

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
