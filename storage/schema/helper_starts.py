"""A helper (家属) who starts the call: the one-time links they hand to the holder, stored as SHA-256."""

from storage.migrate import Migration

COMPONENT = "helper_starts"
ORDER = 33
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE holder_links (
            code_hash TEXT PRIMARY KEY,
            call_id TEXT NOT NULL,
            created_at {float} NOT NULL,
            expires_at {float} NOT NULL,
            used_at {float}
        );
        CREATE INDEX holder_links_call ON holder_links(call_id)
        """,
    ),
]
