"""Signaling tables: customer join tokens, the persisted queue, and call legs for the KPIs."""

from storage.migrate import Migration

COMPONENT = "signaling"
ORDER = 30
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE signaling_tokens (
            token_hash TEXT PRIMARY KEY,
            call_id TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            expires_at {float} NOT NULL,
            care INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE signaling_queue (
            call_id TEXT PRIMARY KEY,
            lane TEXT NOT NULL,
            score {float} NOT NULL,
            data TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE signaling_legs (
            id {pk},
            call_id TEXT NOT NULL,
            lane TEXT NOT NULL,
            queued_at {float} NOT NULL,
            answered_at {float},
            ended_at {float},
            agent TEXT,
            outcome TEXT
        );
        CREATE INDEX signaling_legs_queued ON signaling_legs(queued_at);
        CREATE INDEX signaling_legs_call ON signaling_legs(call_id)
        """,
    ),
    Migration(
        2,
        """
        ALTER TABLE signaling_tokens ADD COLUMN ended_at {float}
        """,
    ),
]
