"""Helpers (家属) in a call: invitation links and the helpers' own join tokens, both stored as SHA-256."""

from storage.migrate import Migration

COMPONENT = "helpers"
ORDER = 32
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE helper_invites (
            code_hash TEXT PRIMARY KEY,
            call_id TEXT NOT NULL,
            invited_by TEXT NOT NULL,
            created_at {float} NOT NULL,
            expires_at {float} NOT NULL,
            used_at {float},
            revoked_at {float}
        );
        CREATE INDEX helper_invites_call ON helper_invites(call_id);
        CREATE TABLE helper_tokens (
            token_hash TEXT PRIMARY KEY,
            call_id TEXT NOT NULL,
            created_at {float} NOT NULL,
            expires_at {float} NOT NULL,
            ended_at {float}
        );
        CREATE INDEX helper_tokens_call ON helper_tokens(call_id)
        """,
    ),
]
