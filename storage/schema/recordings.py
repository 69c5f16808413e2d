"""Call recordings made by the witness: one row per recording, one per encrypted segment."""

from storage.migrate import Migration

COMPONENT = "recordings"
ORDER = 50
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE recordings (
            id TEXT PRIMARY KEY,
            call_id TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            duration_ms {bigint} NOT NULL DEFAULT 0,
            segments INTEGER NOT NULL DEFAULT 0,
            bytes {bigint} NOT NULL DEFAULT 0,
            purged_at TEXT
        );
        CREATE INDEX recordings_call ON recordings(call_id);
        CREATE INDEX recordings_started ON recordings(started_at);
        CREATE TABLE recording_segments (
            recording_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            size {bigint} NOT NULL,
            start_ms {bigint} NOT NULL,
            end_ms {bigint} NOT NULL,
            tracks TEXT NOT NULL,
            audit_seq {bigint},
            PRIMARY KEY (recording_id, idx)
        )
        """,
    ),
]
