"""Audit log signing across nodes and witnesses: the registered key set (one log key, shared by every
node), the signer lease (one node signs checkpoints at a time), and witness cosignatures."""

from storage.migrate import Migration

COMPONENT = "audit_signing"
ORDER = 6
MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE audit_keys (
            key_id TEXT PRIMARY KEY,
            origin TEXT NOT NULL,
            public_hex TEXT NOT NULL,
            registered_at TEXT NOT NULL,
            registered_by TEXT NOT NULL
        );
        CREATE TABLE audit_signer_lease (
            id INTEGER PRIMARY KEY,
            node_id TEXT NOT NULL,
            expires_ms {bigint} NOT NULL
        );
        CREATE TABLE audit_cosignatures (
            tree_size {bigint} NOT NULL,
            witness TEXT NOT NULL,
            line TEXT NOT NULL,
            PRIMARY KEY (tree_size, witness)
        )
        """,
    ),
]
