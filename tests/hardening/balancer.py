"""Several ``counter serve`` nodes behind HAProxy, as a deployment runs them, for scale-out tests.

:class:`Cluster` starts, inside one network namespace that has only ``lo`` (the thread of a
:class:`~tests.browser.isolation.IsolatedLoop`): a private Redis and PostgreSQL (the shared ones live
in the machine's own namespace and cannot be reached from there), N nodes (separate data directories,
one master key, as separate machines have) and HAProxy (Debian's ``haproxy``) in front of them,
round-robin with no stickiness, for plain HTTP and WebSocket alike (long tunnel timeouts).  Every
process the cluster starts, and every socket opened from its loop, sees loopback only, so nothing a
test does (ICE checks of a browser included) leaves it.  Without the privilege to unshare, it runs on
the machine's loopback and :attr:`Cluster.isolated` says so.

Everything that touches the cluster's network runs on its loop: ``cluster.run(coro)``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tests.browser.isolation import IsolatedLoop
from tests.hardening.conftest import PrivatePostgres, PrivateRedis, free_port
from tests.hardening.nodes import Node, stop_process

T = TypeVar("T")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

#: Rate limits count per client address, and every test client (and HAProxy) is 127.0.0.1.
NO_RATE_LIMITS = {f"COUNTER_RATELIMIT_{rule}": "off" for rule in ("LOGIN", "JOIN", "WS", "IDENTITY", "VERIFY", "API")}


def haproxy_config(port: int, backends: list[tuple[str, int]], check_interval_ms: int = 300,
                   check_path: str | None = "/healthz") -> str:
    """Round-robin over ``backends`` (name, loopback port), no stickiness; a node that stops answering
    ``check_path`` is out after three failed checks, and a request whose connection it refused is sent to
    another.  A check waits up to 3 s for its answer: a node busy with a burst on a loaded machine answers
    late but is not down (a killed node refuses the connection at once)."""
    check = " check" if check_path else ""
    servers = "\n".join(f"    server {name} 127.0.0.1:{p}{check}" for name, p in backends)
    health = f"    option httpchk GET {check_path}\n" if check_path else ""
    return f"""global
    maxconn 4096

defaults
    mode http
    option redispatch
    retries 2
    timeout connect 2s
    timeout http-request 10s
    timeout client 1h
    timeout server 1h
    # a WebSocket is a tunnel once upgraded: a call may stay quiet for long
    timeout tunnel 1h
    timeout client-fin 5s
    timeout check 3s

frontend counter
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
{health}    default-server inter {check_interval_ms}ms fall 3 rise 1
{servers}
"""


class Balancer:
    """HAProxy (foreground, ``-db``) on a free loopback port in front of ``nodes``; log in ``tmp/haproxy.log``."""

    def __init__(self, tmp: Path, nodes: list[Node], check_path: str | None = "/healthz") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "haproxy.cfg"
        self.log = tmp / "haproxy.log"
        self.config.write_text(haproxy_config(self.port, [(n.name, n.port) for n in nodes], check_path=check_path))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise AssertionError(f"haproxy refused its configuration: {check.stdout}{check.stderr}")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited with {self.proc.returncode}: {self.log.read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("haproxy did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)


async def _call(fn: Any, *args: Any) -> Any:
    """Run a blocking ``fn`` on the cluster's loop thread: processes it starts join the namespace."""
    return fn(*args)


class Cluster:
    """Private Redis and PostgreSQL, ``count`` nodes and HAProxy in front, in one network namespace.

    ``node_class`` picks what each node runs (:class:`~tests.hardening.nodes.LoopbackNode` for nodes
    that place media); ``env`` goes to every node (timings, keys shared by configuration).
    """

    def __init__(self, tmp: Path, count: int = 2, node_class: type[Node] = Node, **env: str) -> None:
        from identity.evidence import load_or_create_master_key

        self.tmp = tmp
        self.iso = IsolatedLoop()
        self.redis = PrivateRedis()
        self.pg = PrivatePostgres()
        self.prefix = f"lb{uuid.uuid4().hex[:8]}"
        master = tmp / "shared" / "master.key"
        load_or_create_master_key(master)  # one master key for every node: shared configuration
        shared = {**NO_RATE_LIMITS, "COUNTER_MASTER_KEY_FILE": str(master),
                  "COUNTER_AUDIT_KEY_FILE": str(tmp / "shared" / "audit.key"),
                  "COUNTER_PSEUDONYM_KEY_FILE": str(tmp / "shared" / "pseudonym.key"), **env}
        self.nodes = [
            node_class(name, tmp, self.pg.url, self.redis.url, self.prefix, data_dir=tmp / f"data-{name}", **shared)
            for name in "abcdefgh"[:count]
        ]
        self.balancer = Balancer(tmp, self.nodes)

    @property
    def isolated(self) -> bool:
        """Whether the cluster runs in its own network namespace (else on the machine's loopback)."""
        return self.iso.isolated

    @property
    def url(self) -> str:
        """Where clients go: HAProxy."""
        return self.balancer.url

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name or n.env["COUNTER_NODE_ID"] == name)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        """Run ``coro`` on the cluster's loop (in its namespace) and return its result."""
        return self.iso.run(coro, timeout)

    def start(self) -> Cluster:
        self.run(self._start(), timeout=180)
        return self

    async def _start(self) -> None:
        await _call(self.redis.start)
        await _call(self.pg.start)
        # The first node migrates the schema; the others start on a migrated database, together.
        await self.nodes[0].start()
        for node in self.nodes[1:]:
            await node.start()
        await _call(self.balancer.start)

    def kill(self, name: str) -> None:
        """kill -9 one node (no goodbye to anyone); HAProxy takes it out after its failed checks."""
        self.node(name).kill()

    def stop(self) -> None:
        self.balancer.stop()
        for node in self.nodes:
            node.stop()
        self.run(_call(self.redis.stop), timeout=30)
        self.pg.destroy()
        self.iso.stop()

    def tails(self) -> str:
        """The last lines of every node's log, for an assertion's message."""
        return "\n".join(f"--- {n.name}\n{n.tail(20)}" for n in self.nodes)
