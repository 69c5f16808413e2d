"""Failure counts and locks against guessing (logins, service passwords): :mod:`counter.guessing`."""

from storage.migrate import Migration

COMPONENT = "guessing"
ORDER = 60
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE guess_counters (
            subject TEXT PRIMARY KEY,
            failures INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT,
            updated_at TEXT NOT NULL
        )
        """,
    ),
]
