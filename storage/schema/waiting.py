"""Waiting without waiting: kept places (virtual hold) and scheduled call-backs."""

from storage.migrate import Migration

COMPONENT = "waiting"
ORDER = 70
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE waiting_holds (
            call_id TEXT PRIMARY KEY,
            lane TEXT NOT NULL,
            msisdn TEXT NOT NULL,
            code_hash TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL,
            created_at {float} NOT NULL,
            notified_at {float},
            deadline {float},
            ended_at {float}
        );
        CREATE INDEX waiting_holds_status ON waiting_holds(status);
        CREATE TABLE waiting_callbacks (
            id {pk},
            lane TEXT NOT NULL,
            msisdn TEXT NOT NULL,
            preferred_at {float} NOT NULL,
            status TEXT NOT NULL,
            created_at {float} NOT NULL,
            agent TEXT,
            started_at {float},
            call_id TEXT,
            outcome TEXT,
            outcome_at {float},
            history TEXT NOT NULL
        );
        CREATE INDEX waiting_callbacks_due ON waiting_callbacks(status, preferred_at)
        """,
    ),
]
