"""One audit log across nodes: two real ``counter serve`` processes on one PostgreSQL database, each
with its own data directory, the audit key from shared configuration (issue #25)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from counter.audit.keys import Signer
from storage import open_database
from tests.conftest import PG_URL, _drop_schema
from tests.hardening.nodes import Node


@pytest.fixture
async def shared_url() -> AsyncIterator[str]:
    schema = f"an_{uuid.uuid4().hex[:10]}"
    yield f"{PG_URL}?schema={schema}"
    await _drop_schema(schema)


async def _audit_activity(node: Node, rounds: int) -> None:
    """Entries written by ``node``: an auditor logs in and runs verify-now (``auditor.verify``)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(node.url + "/api/auth/login",
                             json={"username": "audit1", "password": "audit1-demo"}) as resp:
            assert resp.status == 200, await resp.text()
            csrf = (await resp.json())["csrf_token"]
        for _ in range(rounds):
            async with http.post(node.url + "/api/audit/verify", headers={"X-CSRF-Token": csrf}) as resp:
                report = await resp.json()
                assert resp.status == 200 and report["ok"], report


def cli_verify(node: Node) -> subprocess.CompletedProcess[str]:
    """``counter audit verify`` run with the node's own configuration."""
    return subprocess.run([sys.executable, "-m", "counter.cli", "audit", "verify"], env=node.env,
                          capture_output=True, text=True, timeout=120)


async def test_two_nodes_keep_one_log_signed_by_one_key_and_verify_on_both(tmp_path: Path, shared_url: str) -> None:
    key_file = tmp_path / "shared" / "audit.key"
    signer = Signer.from_file(key_file)
    shared = {"COUNTER_AUDIT_KEY_FILE": str(key_file)}
    a = Node("aa", tmp_path, shared_url, data_dir=tmp_path / "data-a", **shared)
    b = Node("ab", tmp_path, shared_url, data_dir=tmp_path / "data-b", **shared)
    try:
        await a.start()  # first alone: it creates the schema
        await b.start()
        await asyncio.gather(_audit_activity(a, 4), _audit_activity(b, 4))
        await _audit_activity(b, 1)
    finally:
        b.stop()
        a.stop()
    for node in (a, b):
        result = cli_verify(node)
        assert result.returncode == 0 and result.stdout.startswith("OK"), (result.stdout, result.stderr)
    db = await open_database(shared_url)
    try:
        keys = {r["key_id"] for r in await db.fetch("SELECT DISTINCT key_id FROM audit_checkpoints")}
        seqs = [int(r["seq"]) for r in await db.fetch("SELECT seq FROM audit_entries ORDER BY seq")]
        registered = await db.fetch("SELECT key_id FROM audit_keys")
        leases = await db.fetch("SELECT node_id FROM audit_signer_lease")
    finally:
        await db.close()
    assert keys == {signer.key_id}
    assert seqs == list(range(len(seqs))) and len(seqs) >= 9  # one sequence, no gaps
    assert [r["key_id"] for r in registered] == [signer.key_id]
    assert leases == []  # the signer gave its lease back on shutdown


async def test_a_node_with_another_key_refuses_to_start(tmp_path: Path, shared_url: str) -> None:
    a = Node("ka", tmp_path, shared_url, data_dir=tmp_path / "data-a")
    b = Node("kb", tmp_path, shared_url, data_dir=tmp_path / "data-b")
    try:
        await a.start()
        await _audit_activity(a, 1)
        b.spawn()
        assert b.proc is not None
        assert b.proc.wait(60) == 1
    finally:
        a.stop()
        b.stop()
    assert "is not the log's key" in b.tail() and "COUNTER_AUDIT_KEY_FILE" in b.tail()
