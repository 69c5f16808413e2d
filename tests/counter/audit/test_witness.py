"""Witnessing with two real ``counter witness serve`` processes: cosignatures are collected, and a
rolled-back database and a rewritten log are refused at start and reported by the auditor's verify."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from counter.app import build_app
from counter.audit import AUDIT, AuditEvent, AuditLog
from counter.audit.keys import Signer, split_note
from counter.audit.verify import export_bundle, verify_bundle
from counter.audit.witness import Cosigner, count_cosignatures
from counter.audit.witnessing import WitnessRefusal
from counter.cli import main
from counter.config import Settings, load_settings
from storage import open_database
from tests.hardening.conftest import free_port

Client = TestClient[Any, Any]


class WitnessProcess:
    """``counter witness serve`` on loopback, with its own state directory."""

    def __init__(self, tmp: Path, name: str, log_vkey: str) -> None:
        self.name, self.port, self.state = name, free_port(), tmp / name.replace("/", "_")
        self.url = f"http://127.0.0.1:{self.port}"
        base = [sys.executable, "-m", "counter.audit.witness"]
        self.vkey = subprocess.run([*base, "key", "--state-dir", str(self.state), "--name", name],
                                   capture_output=True, text=True, check=True, timeout=60).stdout.strip()
        self.proc = subprocess.Popen([*base, "serve", "--state-dir", str(self.state), "--name", name,
                                      "--log", log_vkey, "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(300):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            time.sleep(0.05)
        raise AssertionError(f"witness {name} did not come up")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "shared" / "audit.key"
    Signer.from_file(path)
    return path


@pytest.fixture
def witnesses(tmp_path: Path, key_file: Path) -> Iterator[list[WitnessProcess]]:
    vkey = Signer.from_file(key_file).verifier_key
    started = [WitnessProcess(tmp_path, f"witness{i}.example/w", vkey) for i in (1, 2)]
    yield started
    for w in started:
        w.stop()


def _settings(tmp_path: Path, key_file: Path, witnesses: list[WitnessProcess]) -> Settings:
    return load_settings(
        config_file=tmp_path / "none.toml", environ={}, tls=False, host="127.0.0.1", port=8443,
        data_dir=tmp_path / "data", cert_dir=tmp_path / "certs", require_recording=False, demo_data=False,
        audit_key_file=key_file, audit_witnesses=[f"{w.url} {w.vkey}" for w in witnesses], audit_witness_quorum=2,
    )


async def _run_once(settings: Settings, entries: int) -> str:
    """Start the service, append ``entries``, wait until both witnesses cosigned; the served note."""
    client: Client = TestClient(TestServer(await build_app(settings)))
    await client.start_server()
    try:
        log = client.app[AUDIT]  # type: ignore[index]
        for i in range(entries):
            await log.append(AuditEvent("transaction.bill.query", "agent", "agent1", details={"i": i}))
        cp = await log.flush()
        for _ in range(200):
            resp = await client.get("/checkpoint")
            note = await resp.text()
            if resp.status == 200 and f"\n{cp.tree_size}\n" in note and note.count("\u2014") == 3:
                return note
            await asyncio.sleep(0.05)
        raise AssertionError(f"the checkpoint of size {cp.tree_size} was not cosigned by both witnesses")
    finally:
        await client.close()


def _copy_db(data: Path, to: Path) -> None:
    to.mkdir(exist_ok=True)
    for f in data.glob("counter.db*"):
        shutil.copy2(f, to / f.name)


def _restore_db(copy: Path, data: Path) -> None:
    for f in data.glob("counter.db*"):
        f.unlink()
    for f in copy.glob("counter.db*"):
        shutil.copy2(f, data / f.name)


def _auditor_verify(tmp_path: Path, key_file: Path, kept: Path) -> int:
    config = tmp_path / "auditor.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\naudit_key_file = "{key_file}"\n')
    return main(["--config", str(config), "audit", "verify", "--public-key", Signer.from_file(key_file).verifier_key,
                 "--checkpoint", str(kept)])


async def _refused(settings: Settings) -> WitnessRefusal:
    with pytest.raises(WitnessRefusal) as refused:
        await build_app(settings)
    db = await open_database(settings.effective_database_url)
    try:
        row = await db.fetchrow("SELECT body FROM audit_entries WHERE action = 'audit.start_refused'"
                                " ORDER BY seq DESC LIMIT 1")
    finally:
        await db.close()
    assert row is not None  # audited
    return refused.value


async def test_witnesses_cosign_and_catch_a_rollback_and_a_rewrite(
    tmp_path: Path, key_file: Path, witnesses: list[WitnessProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, key_file, witnesses)
    cosigners = [Cosigner.parse(w.vkey) for w in witnesses]
    first = await _run_once(settings, 5)
    assert count_cosignatures(first, cosigners) == [w.name for w in witnesses]
    _copy_db(settings.data_dir, tmp_path / "copy-1")
    second = await _run_once(settings, 5)
    assert count_cosignatures(second, cosigners) == [w.name for w in witnesses]
    (tmp_path / "kept.note").write_text(second)
    _copy_db(settings.data_dir, tmp_path / "copy-2")

    # k of n on an exported bundle: both trusted witnesses cosigned; an unknown witness does not count.
    db = await open_database(settings.effective_database_url)
    log = await AuditLog.open(db, Signer.from_file(key_file), b"k" * 32)
    bundle = await export_bundle(log, 0)
    await log.abandon()
    await db.close()
    stranger = Cosigner.parse(_stranger_vkey(tmp_path))
    vkey = Signer.from_file(key_file).verifier_key
    assert verify_bundle(bundle, vkey, witnesses=cosigners, quorum=2).ok
    short = verify_bundle(bundle, vkey, witnesses=[cosigners[0], stranger], quorum=2)
    assert [p.kind for p in short.problems] == ["witness_quorum"]

    # A rollback: the older copy of the database is put back.
    _restore_db(tmp_path / "copy-1", settings.data_dir)
    refusal = await _refused(settings)
    assert refusal.details["problem"] == "rollback" and "behind" in str(refusal)
    assert await asyncio.to_thread(_auditor_verify, tmp_path, key_file, tmp_path / "kept.note") == 1
    assert "ROLLBACK" in capsys.readouterr().out

    # A rewrite: the newest copy, its whole log replaced and re-signed with the server's own key.
    _restore_db(tmp_path / "copy-2", settings.data_dir)
    db = await open_database(settings.effective_database_url)
    size = int(split_note(second)[0].split("\n")[1])
    for table in ("audit_personal", "audit_entries", "audit_checkpoints", "audit_tiles", "audit_cosignatures"):
        await db.execute(f"DELETE FROM {table}")
    log = await AuditLog.open(db, Signer.from_file(key_file), b"k" * 32)
    for i in range(size + 2):
        await log.append(AuditEvent("transaction.bill.query", "agent", "agent1", details={"rewritten": i}))
    await log.close()
    await db.close()
    refusal = await _refused(settings)
    assert refusal.details["problem"] == "inconsistent"
    assert await asyncio.to_thread(_auditor_verify, tmp_path, key_file, tmp_path / "kept.note") == 1
    assert "FORK" in capsys.readouterr().out


def _stranger_vkey(tmp_path: Path) -> str:
    from counter.audit.witness import Witness

    return Witness(tmp_path / "stranger", "stranger.example/w", []).verifier_key
