"""The retention purge, audited: personal data of audit entries and the personal fields of counter
sessions (claimed name, claimed phone/account, rating comment) older than the retention period.

Each purge writes, in the same transaction as its deletes, ``audit.purge`` entries that commit to
what was removed (counts and the seq ranges of the entries whose personal data went), so
``counter audit verify`` tells a purge from a personal row deleted behind the log's back.  Purges
on several nodes are serialised by the audit insert lock; the second finds nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from counter.audit.entry import AuditEvent
from counter.audit.log import AuditLog, lock_sequence
from storage.timeutil import iso, utcnow

log = logging.getLogger("counter.audit.purge")

#: Seq ranges one ``audit.purge`` entry lists (its body must stay far below an entry bundle's 64 KiB).
RANGES_PER_ENTRY = 500
PURGE_ACTION = "audit.purge"


@dataclass
class PurgeReport:
    """What one purge removed."""

    personal_entries: int = 0
    seq_ranges: list[list[int]] = field(default_factory=list)
    sessions: int = 0
    audit_seqs: list[int] = field(default_factory=list)


def seq_ranges(seqs: list[int]) -> list[list[int]]:
    """Sorted sequence numbers as inclusive ``[first, last]`` ranges."""
    out: list[list[int]] = []
    for seq in seqs:
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


async def purge(audit: AuditLog, older_than: datetime) -> PurgeReport:
    """Delete personal data older than ``older_than`` and write the entries that say so."""
    cutoff = iso(older_than)
    db = audit.db
    report = PurgeReport()
    if db.dialect == "sqlite":
        await db.execute("PRAGMA secure_delete=ON")
    try:
        async with db.transaction() as tx:
            await lock_sequence(tx)
            rows = await tx.fetch(
                "SELECT p.seq FROM audit_personal p JOIN audit_entries e ON e.seq = p.seq"
                " WHERE e.time < $1 ORDER BY p.seq", cutoff,
            )
            seqs = [int(r["seq"]) for r in rows]
            if seqs:
                await tx.execute(
                    "DELETE FROM audit_personal WHERE seq IN (SELECT seq FROM audit_entries WHERE time < $1)", cutoff
                )
            report.sessions = await tx.execute(
                "UPDATE counter_sessions SET claimed_name = '', account = NULL, rating_comment = NULL"
                " WHERE created_at < $1 AND (claimed_name <> '' OR account IS NOT NULL OR rating_comment IS NOT NULL)",
                cutoff,
            )
            report.personal_entries, report.seq_ranges = len(seqs), seq_ranges(seqs)
            chunks = [report.seq_ranges[i:i + RANGES_PER_ENTRY]
                      for i in range(0, len(report.seq_ranges), RANGES_PER_ENTRY)] or [[]]
            if seqs or report.sessions:
                for i, chunk in enumerate(chunks):
                    receipt = await audit.append_in(tx, AuditEvent(
                        PURGE_ACTION, "system", "system", reason="retention",
                        details={"older_than": cutoff, "personal_entries": sum(b - a + 1 for a, b in chunk),
                                 "seq_ranges": chunk, "sessions": report.sessions if i == 0 else 0,
                                 "part": i + 1, "parts": len(chunks)},
                    ))
                    report.audit_seqs.append(receipt.seq)
    finally:
        if db.dialect == "sqlite":
            await db.execute("PRAGMA secure_delete=OFF")
    if report.personal_entries:
        if db.dialect == "sqlite":
            await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            await db.execute("VACUUM audit_personal")
    if report.audit_seqs:
        log.info("retention purge: personal data of %d audit entries and %d sessions removed (audit seq %s)",
                 report.personal_entries, report.sessions, report.audit_seqs)
    return report


def purged_seqs(details: dict[str, Any]) -> list[tuple[int, int]]:
    """The seq ranges an ``audit.purge`` entry's details name (malformed ones: none)."""
    out = []
    for pair in details.get("seq_ranges") or []:
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair):
            out.append((pair[0], pair[1]))
    return out


def purge_task(audit: Callable[[], AuditLog], retention_days: int, interval_s: float
               ) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """An aiohttp ``cleanup_ctx`` running :func:`purge` every ``interval_s`` (first run after a few seconds)."""

    @contextlib.asynccontextmanager
    async def ctx(_app: Any) -> AsyncIterator[None]:
        async def loop() -> None:
            await asyncio.sleep(min(interval_s, 5.0))
            while True:
                try:
                    await purge(audit(), utcnow() - timedelta(days=retention_days))
                except Exception:
                    log.exception("retention purge failed; retrying in %s s", interval_s)
                await asyncio.sleep(interval_s)

        task = asyncio.get_running_loop().create_task(loop(), name="audit-retention-purge")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx
