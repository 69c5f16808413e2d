"""Audit log benchmark: durable appends/s vs bare inserts, proof time, full verification time.

    python bench/audit.py                       # SQLite and PostgreSQL, verification over 100k entries
    python bench/audit.py --verify-entries 1000000 --backends sqlite

Durable appends: W writer tasks each ``await log.append(...)`` in a loop (every append returns only
after its batch committed).  Bare inserts: the same rows (same seq, body, hash) inserted by plain
``executemany`` with the same number of commits as the log used (the storage's own limit), and one
commit per row (no group commit).  Results are ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from counter.audit import AuditEvent, AuditLog
from counter.audit.entry import INSERT_ENTRY
from counter.audit.keys import Signer
from counter.audit.verify import verify_database
from storage import Database, migrate, open_database

PG_URL = os.environ.get("COUNTER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
KEY = b"k" * 32


def event(w: int, i: int) -> AuditEvent:
    return AuditEvent(
        "transaction.puk.query", "agent", f"agent{w % 40}", session_id=f"s{w}", account=f"1380013{i % 10000:04d}",
        details={"i": i, "channel": "video", "result": "shown"}, evidence=["ab" * 32],
    )


async def fresh(backend: str, tmp: Path) -> tuple[Database, str | None]:
    if backend == "sqlite":
        db = await open_database(f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}")
        schema = None
    else:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        db = await open_database(f"{PG_URL}?schema={schema}")
    await migrate(db)
    return db, schema


async def drop(db: Database, schema: str | None) -> None:
    if schema:
        await db.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await db.close()


async def appends(backend: str, tmp: Path, writers: int, total: int) -> dict[str, Any]:
    db, schema = await fresh(backend, tmp)
    log = await AuditLog.open(db, Signer.generate(), KEY)
    per = total // writers
    batches = 0
    orig = log._write

    async def counting(batch: Any, *, force_checkpoint: bool) -> Any:
        nonlocal batches
        batches += 1 if batch else 0
        return await orig(batch, force_checkpoint=force_checkpoint)

    log._write = counting  # type: ignore[method-assign]

    async def writer(w: int) -> None:
        for i in range(per):
            await log.append(event(w, i))

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - t0
    await log.close()
    n = per * writers
    rows = await db.fetch("SELECT * FROM audit_entries ORDER BY seq")
    await drop(db, schema)

    # The same rows, bare, with the same number of commits.
    db2, schema2 = await fresh(backend, tmp)
    values = [tuple(r[c] for c in ("seq", "time", "action", "actor_role", "actor_id", "outcome", "session_id",
                                   "account", "body", "leaf_hash")) for r in rows]
    size = max(1, len(values) // max(1, batches))
    t0 = time.perf_counter()
    for lo in range(0, len(values), size):
        async with db2.transaction() as tx:
            await tx.executemany(INSERT_ENTRY, values[lo:lo + size])
    bare = time.perf_counter() - t0
    await drop(db2, schema2)

    # One commit per row (what appends cost without group commit), on a sample.
    db3, schema3 = await fresh(backend, tmp)
    sample = values[:min(len(values), 500)]
    t0 = time.perf_counter()
    for v in sample:
        async with db3.transaction() as tx:
            await tx.execute(INSERT_ENTRY, *v)
    single = time.perf_counter() - t0
    await drop(db3, schema3)
    return {
        "backend": backend, "writers": writers, "entries": n, "batches": batches,
        "durable_appends_per_s": n / elapsed, "bare_same_commits_per_s": n / bare,
        "bare_commit_per_row_per_s": len(sample) / single,
    }


async def big_log(backend: str, tmp: Path, entries: int) -> tuple[Database, str | None, AuditLog, float]:
    db, schema = await fresh(backend, tmp)
    log = await AuditLog.open(db, Signer.generate(), KEY, max_batch=5000)
    t0 = time.perf_counter()
    chunk = 5000
    for lo in range(0, entries, chunk):
        await asyncio.gather(*(log.append(event(i % 64, i)) for i in range(lo, min(entries, lo + chunk))))
    fill = time.perf_counter() - t0
    await log.flush()
    return db, schema, log, fill


async def proofs_and_verify(backend: str, tmp: Path, entries: int) -> dict[str, Any]:
    db, schema, log, fill = await big_log(backend, tmp, entries)
    size = log.size
    rng = random.Random(1)
    times = []
    for _ in range(500):
        seq = rng.randrange(size)
        t0 = time.perf_counter()
        await log.inclusion_proof(seq, size)
        times.append(time.perf_counter() - t0)
    ctimes = []
    for _ in range(200):
        old = rng.randrange(1, size)
        t0 = time.perf_counter()
        await log.consistency_proof(old, size)
        ctimes.append(time.perf_counter() - t0)
    await log.close()
    t0 = time.perf_counter()
    reopened = await AuditLog.open(db, log.signer, KEY)
    recover = time.perf_counter() - t0
    await reopened.close()
    t0 = time.perf_counter()
    report = await verify_database(db, log.signer.public_key)
    verify = time.perf_counter() - t0
    assert report.ok, report.summary()
    await drop(db, schema)
    times.sort()
    ctimes.sort()
    return {
        "backend": backend, "entries": size, "fill_s": fill,
        "inclusion_proof_ms_median": statistics.median(times) * 1e3,
        "inclusion_proof_ms_p99": times[int(len(times) * 0.99)] * 1e3,
        "consistency_proof_ms_median": statistics.median(ctimes) * 1e3,
        "restart_recovery_s": recover, "full_verify_s": verify,
        "full_verify_1M_extrapolated_s": verify * 1_000_000 / size,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--writers", default="1,16,64,256", help="comma-separated; empty to skip")
    parser.add_argument("--appends", type=int, default=20000, help="entries per append run")
    parser.add_argument("--verify-entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        tmp = Path(d)
        for backend in args.backends.split(","):
            for w in (int(x) for x in args.writers.split(",") if x):
                total = args.appends if w > 1 else min(args.appends, 2000)
                r = await appends(backend, tmp, w, total)
                print(f"{backend:10} writers={w:4} entries={r['entries']:6} batches={r['batches']:5}"
                      f"  durable appends/s {r['durable_appends_per_s']:8.0f}"
                      f"  bare same-commits/s {r['bare_same_commits_per_s']:8.0f}"
                      f"  (ratio {r['durable_appends_per_s'] / r['bare_same_commits_per_s']:.2f})"
                      f"  bare commit-per-row/s {r['bare_commit_per_row_per_s']:6.0f}", flush=True)
            r = await proofs_and_verify(backend, tmp, args.verify_entries)
            print(f"{backend:10} {r['entries']} entries (filled in {r['fill_s']:.1f} s):"
                  f" inclusion proof median {r['inclusion_proof_ms_median']:.3f} ms"
                  f" p99 {r['inclusion_proof_ms_p99']:.3f} ms; consistency median"
                  f" {r['consistency_proof_ms_median']:.3f} ms; restart recovery {r['restart_recovery_s']:.2f} s;"
                  f" full verify {r['full_verify_s']:.1f} s"
                  f" (1M extrapolated {r['full_verify_1M_extrapolated_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
