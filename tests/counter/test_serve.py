"""`counter serve` runs the whole service: HTTPS with its own CA, SQLite or PostgreSQL, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiohttp import ClientSession, TCPConnector

from counter.certs import create_certs
from tests.conftest import PG_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, "COUNTER_HOST": "127.0.0.1", "COUNTER_PORT": str(port), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "counter.cli", "serve"],
        cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


async def wait_healthy(url: str, ctx: ssl.SSLContext | None, proc: subprocess.Popen[str]) -> dict[str, str]:
    deadline = time.monotonic() + 60
    async with ClientSession(connector=TCPConnector(ssl=ctx if ctx else False)) as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                async with http.get(url + "/healthz") as r:
                    if r.status == 200:
                        async with http.get(url + "/readyz") as ready:
                            body: dict[str, str] = await ready.json()
                            return body
            except (OSError, ssl.SSLError):
                pass
            await _sleep()
    raise AssertionError("server did not come up")


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.2)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


async def _probe(cwd: Path, *args: str) -> tuple[int | None, str]:
    """``counter probe call ARGS`` run from ``cwd`` (whose settings' cert_dir is ``cwd/certs``)."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "counter.cli", "probe", "call", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode()


async def test_serve_https_on_sqlite_with_its_own_ca(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, port)
    try:
        for _ in range(300):
            if (tmp_path / "certs" / "ca.crt").exists() and (tmp_path / "certs" / "server.key").exists():
                break
            await _sleep()
        await _sleep()
        ctx = ssl.create_default_context(cafile=str(tmp_path / "certs" / "ca.crt"))
        ready = await wait_healthy(f"https://localhost:{port}", ctx, proc)
        assert ready["status"] == "ready"
        # The project's own client trusts the project's own CA (the settings' cert_dir) by default.
        url = f"https://localhost:{port}"
        code, out = await _probe(tmp_path, "--url", url, "--frames", "5")
        assert code == 0 and json.loads(out)["ok"] is True, out
        other = create_certs(tmp_path / "other", with_lan=False).ca_cert  # another installation's CA
        code, out = await _probe(tmp_path, "--url", url, "--cafile", str(other))
        assert code == 1 and "CERTIFICATE_VERIFY_FAILED" in out, out
    finally:
        out = stop(proc)
    assert f"https://localhost:{port}/customer" in out and "agent1 /" in out
    assert (tmp_path / "certs" / "server.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data" / "counter.db").exists()


async def test_serve_on_postgresql(tmp_path: Path) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    port = free_port()
    proc = start(tmp_path, port, COUNTER_TLS="false", COUNTER_DATABASE_URL=f"{PG_URL}?schema={schema}")
    try:
        ready = await wait_healthy(f"http://127.0.0.1:{port}", None, proc)
        assert ready["status"] == "ready"
        conn = await asyncpg.connect(PG_URL)
        try:
            users = await conn.fetchval(f'SELECT COUNT(*) FROM "{schema}".users')
        finally:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
        assert users >= 4
    finally:
        stop(proc)
    assert not (tmp_path / "data" / "counter.db").exists()


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, free_port(), COUNTER_TLS="false",
                 COUNTER_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/test")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "cannot connect to PostgreSQL" in out and "Traceback" not in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_graceful_stop_on_signals(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    proc = start(tmp_path, port, COUNTER_TLS="false")
    await wait_healthy(f"http://127.0.0.1:{port}", None, proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "shutting down" in out and "Traceback" not in out


def test_event_loop_is_uvloop_when_installed_else_asyncio() -> None:
    import asyncio
    import importlib.util

    from counter.serve import event_loop_factory

    assert event_loop_factory("asyncio") is None
    if importlib.util.find_spec("uvloop") is None:
        assert event_loop_factory("auto") is None
        with pytest.raises(ImportError):
            event_loop_factory("uvloop")
        return
    factory = event_loop_factory("auto")
    assert factory is not None and factory is event_loop_factory("uvloop")
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop") and isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()
