"""The index of the witness's recordings in the database, and their audit entries.

A recording is indexed when it starts (a call that has one already goes on in a next part, linked to
the previous one), each segment as it closes (its sha256 in the audit log, ``recording.segment``),
and its end (``recording.closed``).  The customer's consent to being recorded is kept here too, so
that the witness of whichever node owns the call finds it.
"""

from __future__ import annotations

import json

from counter.audit import AuditEvent, AuditLog
from signaling.witness import SegmentInfo
from storage import Database
from storage.timeutil import iso


class RecordingIndex:
    """The witness's hooks: what it records, written to the database and the audit log."""

    def __init__(self, db: Database, audit: AuditLog, node_id: str) -> None:
        self.db = db
        self.audit = audit
        self.node_id = node_id

    async def started(self, recording_id: str, call_id: str) -> None:
        """Index a new recording; a call that has one already (its owner died, or restarted) goes on in a
        next part linked to the previous one, which is closed where it stopped."""
        async with self.db.transaction() as tx:
            previous = await tx.fetchrow(
                "SELECT recording_id, part FROM recording_parts WHERE call_id = $1 ORDER BY part DESC LIMIT 1",
                call_id)
            await tx.execute("INSERT INTO recordings (id, call_id, started_at) VALUES ($1, $2, $3)",
                             recording_id, call_id, iso())
            await tx.execute(
                "INSERT INTO recording_parts (recording_id, call_id, node, part, previous_id)"
                " VALUES ($1, $2, $3, $4, $5)",
                recording_id, call_id, self.node_id, previous["part"] + 1 if previous else 1,
                previous["recording_id"] if previous else None)
            left_open: str | None = None
            if previous is not None and await tx.fetchval(
                    "SELECT ended_at FROM recordings WHERE id = $1", previous["recording_id"]) is None:
                left_open = previous["recording_id"]
                await tx.execute("UPDATE recordings SET ended_at = $2 WHERE id = $1", left_open, iso())
        if left_open is not None:  # its node stopped without closing it: closed here, where the next part starts
            await self.audit.append(AuditEvent(
                "recording.closed", "system", "system", session_id=call_id,
                details={"recording": left_open, "reason": "owner_lost", "next": recording_id},
            ))

    async def segment(self, info: SegmentInfo) -> None:
        """A closed segment: its sha256 in the audit log, then in the index with the entry's number."""
        receipt = await self.audit.append(AuditEvent(
            "recording.segment", "system", "system", session_id=info.call_id, evidence=[info.sha256],
            details={"recording": info.recording_id, "index": info.index, "bytes": info.size,
                     "start_ms": info.start_ms, "end_ms": info.end_ms, "tracks": list(info.tracks)},
        ))
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO recording_segments (recording_id, idx, sha256, size, start_ms, end_ms, tracks,"
                " audit_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                info.recording_id, info.index, info.sha256, info.size, info.start_ms, info.end_ms,
                json.dumps(list(info.tracks)), receipt.seq,
            )
            await tx.execute(
                "UPDATE recordings SET segments = segments + 1, bytes = bytes + $2,"
                " duration_ms = CASE WHEN duration_ms > $3 THEN duration_ms ELSE $3 END WHERE id = $1",
                info.recording_id, info.size, info.end_ms,
            )

    async def ended(self, call_id: str, recording_id: str, segments: list[SegmentInfo]) -> None:
        """A recording closed (its call ended, or it left this node)."""
        await self.db.execute("UPDATE recordings SET ended_at = $2 WHERE id = $1", recording_id, iso())
        await self.audit.append(AuditEvent(
            "recording.closed", "system", "system", session_id=call_id,
            details={"recording": recording_id, "segments": len(segments),
                     "duration_ms": max((s.end_ms for s in segments), default=0)},
        ))

    async def consented_at(self, call_id: str) -> float | None:
        """When the customer of ``call_id`` agreed to being recorded (on any node), or ``None``."""
        value = await self.db.fetchval("SELECT accepted_at FROM call_consents WHERE call_id = $1", call_id)
        return float(value) if value is not None else None
