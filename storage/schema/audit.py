"""Audit log tables: append-only entries, purgeable personal data, signed checkpoints, and a cache of
the hashes of every complete 64-leaf subtree (``audit_tiles``, to restart without rehashing every
entry; never trusted by verification)."""

from storage.migrate import Migration

COMPONENT = "audit"
ORDER = 5
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE audit_entries (
            seq {bigint} PRIMARY KEY,
            time TEXT NOT NULL,
            action TEXT NOT NULL,
            actor_role TEXT NOT NULL,
            actor_id TEXT NOT NULL,
            outcome TEXT NOT NULL,
            session_id TEXT,
            account TEXT,
            body TEXT NOT NULL,
            leaf_hash TEXT NOT NULL
        );
        CREATE INDEX audit_entries_time ON audit_entries(time);
        CREATE INDEX audit_entries_actor ON audit_entries(actor_id, seq);
        CREATE INDEX audit_entries_account ON audit_entries(account, seq);
        CREATE INDEX audit_entries_action ON audit_entries(action, seq);
        CREATE INDEX audit_entries_session ON audit_entries(session_id, seq);
        CREATE TABLE audit_personal (
            seq {bigint} PRIMARY KEY,
            salt TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE TABLE audit_checkpoints (
            tree_size {bigint} PRIMARY KEY,
            root_hash TEXT NOT NULL,
            time TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature TEXT NOT NULL
        )
        """,
    ),
    Migration(
        2,
        """
        CREATE TABLE audit_tiles (
            idx {bigint} PRIMARY KEY,
            hash TEXT NOT NULL
        )
        """,
    ),
]
