"""One log key and one signer across nodes.

* The **registered key set** (``audit_keys``): the first node to open an empty log registers its
  public key and origin; every node must then sign with that key (``audit_key_file`` from shared
  configuration), else it refuses to start.  A node signing with its own key would produce
  checkpoints that no verifier trusts.
* The **signer lease** (``audit_signer_lease``, one row): only the node holding it signs
  checkpoints; the others append entries, which the holder folds into its tree and checkpoints.
  The holder renews it with every checkpoint; a lease not renewed for ``ttl`` (the holder died or
  went idle) is taken by the next node that wants to sign.  Taken inside the audit insert lock, so
  two nodes never both hold it.
"""

from __future__ import annotations

import time

from counter.audit.entry import AuditError
from counter.audit.keys import KeyFileError, Signer, raw_public
from storage import Database, Executor
from storage.timeutil import iso


async def register_key(db: Database, signer: Signer, node_id: str, latest_key_id: str | None) -> None:
    """Register ``signer``'s key as the log key if none is, else check it is the registered one.

    ``latest_key_id`` is the key id of the newest stored checkpoint: a log written before keys were
    registered is adopted only by the key that signed it.  Raises :class:`KeyFileError`.
    """
    from counter.audit.log import lock_sequence

    async with db.transaction() as tx:
        await lock_sequence(tx)
        rows = await tx.fetch("SELECT key_id, origin, registered_by FROM audit_keys ORDER BY registered_at")
        if not rows:
            if latest_key_id is not None and latest_key_id != signer.key_id:
                raise KeyFileError(
                    f"the audit log is signed with key id {latest_key_id}, this node's key"
                    f" ({signer.key_id}) is another: give every node the log's key file (audit_key_file)"
                )
            await tx.execute(
                "INSERT INTO audit_keys (key_id, origin, public_hex, registered_at, registered_by)"
                " VALUES ($1, $2, $3, $4, $5)",
                signer.key_id, signer.origin, raw_public(signer.public_key).hex(), iso(), node_id,
            )
            return
    mine = [r for r in rows if r["key_id"] == signer.key_id]
    if not mine:
        first = rows[0]
        raise KeyFileError(
            f"this node's audit key (key id {signer.key_id}) is not the log's key (key id {first['key_id']},"
            f" registered by {first['registered_by']}): give every node the same key file"
            " (COUNTER_AUDIT_KEY_FILE from shared configuration)"
        )
    if mine[0]["origin"] != signer.origin:
        raise KeyFileError(
            f"this node's audit origin {signer.origin!r} is not the log's ({mine[0]['origin']!r}):"
            " set audit_origin to the same value on every node"
        )


async def take_lease(tx: Executor, node_id: str, ttl_s: float) -> bool:
    """Take or renew the signer lease in ``tx`` (which holds the audit insert lock); whether we hold it."""
    now = int(time.time() * 1000)
    until = now + int(ttl_s * 1000)
    row = await tx.fetchrow("SELECT node_id, expires_ms FROM audit_signer_lease WHERE id = 1")
    if row is None:
        await tx.execute("INSERT INTO audit_signer_lease (id, node_id, expires_ms) VALUES (1, $1, $2)", node_id, until)
        return True
    if row["node_id"] == node_id or int(row["expires_ms"]) < now:
        await tx.execute("UPDATE audit_signer_lease SET node_id = $1, expires_ms = $2 WHERE id = 1", node_id, until)
        return True
    return False


async def release_lease(db: Database, node_id: str) -> None:
    """Give the lease up (on close), so another node signs at once."""
    try:
        await db.execute("DELETE FROM audit_signer_lease WHERE id = 1 AND node_id = $1", node_id)
    except Exception as exc:  # the database may be gone at shutdown; the lease then just expires
        raise AuditError(f"could not release the signer lease: {exc}") from exc


async def lease_holder(db: Database) -> tuple[str, int] | None:
    """Who holds the signer lease and until when (unix ms), if anyone."""
    row = await db.fetchrow("SELECT node_id, expires_ms FROM audit_signer_lease WHERE id = 1")
    return (str(row["node_id"]), int(row["expires_ms"])) if row else None
