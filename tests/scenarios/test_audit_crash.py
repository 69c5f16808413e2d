"""Kill -9 a process appending under concurrent load, repeatedly: no acknowledged entry is lost and
the log still verifies after every restart (both back-ends)."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from pathlib import Path

from counter.audit import AuditLog
from counter.audit.keys import Signer
from counter.audit.verify import verify_database
from storage import Database
from tests.counter.audit.conftest import PSEUDONYM_KEY

CHILD = Path(__file__).with_name("crash_child.py")
ROUNDS = 5


async def run_and_kill(db_url: str, key_file: Path, acks_before_kill: int) -> dict[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), db_url, str(key_file), "16",
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    acked: dict[int, str] = {}
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line == b"ready\n", line
        while len(acked) < acks_before_kill:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.startswith(b"ack "), line
            _, seq, leaf = line.decode().split()
            acked[int(seq)] = leaf
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _ = await proc.communicate()  # acknowledged before the kill landed
    for line in rest.decode().splitlines():
        if line.startswith("ack ") and line.count(" ") == 2:
            _, seq, leaf = line.split()
            acked[int(seq)] = leaf
    assert proc.returncode == -signal.SIGKILL
    return acked


async def test_sigkill_under_load_loses_no_acknowledged_entry(db: Database, db_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "audit.key"
    public = Signer.from_file(key_file).public_key
    rng = random.Random(6962)
    acked_total: dict[int, str] = {}
    for _ in range(ROUNDS):
        acked = await run_and_kill(db_url, key_file, rng.randint(30, 250))
        assert not acked.keys() & acked_total.keys(), "a seq was handed out twice"
        acked_total.update(acked)
        stored = {int(r["seq"]): r["leaf_hash"] for r in await db.fetch("SELECT seq, leaf_hash FROM audit_entries")}
        missing = [s for s, leaf in acked_total.items() if stored.get(s) != leaf]
        assert not missing, f"acknowledged entries lost: {missing[:10]}"
        report = await verify_database(db, public)
        assert report.ok, report.summary()
        assert report.checkpoints > 0
    log = await AuditLog.open(db, Signer.from_file(key_file), PSEUDONYM_KEY)
    try:
        assert log.size == len(stored) == max(stored) + 1
        cp = await log.flush()
        assert cp is not None and cp.tree_size == log.size
    finally:
        await log.close()
    assert (await verify_database(db, public)).verified_size == len(stored)
