"""Tamper-evident audit log: RFC 6962 Merkle tree, signed checkpoints, group commit.

Other components append through the log on the app::

    from counter.audit import AUDIT, AuditEvent
    await request.app[AUDIT].append(AuditEvent("transaction.puk.query", "agent", "agent1", account="138..."))

or, to commit together with their own change, ``await app[AUDIT].append_in(tx, event)`` inside
``db.transaction()``.  See docs/AUDIT.md for the format and offline verification.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aiohttp import web

from counter.audit.entry import AuditError, AuditEvent, AuditReceipt
from counter.audit.keys import Checkpoint, KeyFileError, Signer, load_or_create_secret
from counter.audit.log import AuditLog, InclusionProof
from counter.config import Settings
from storage import Database

AUDIT = web.AppKey("audit", AuditLog)

__all__ = [
    "AUDIT",
    "AuditError",
    "AuditEvent",
    "AuditLog",
    "AuditReceipt",
    "Checkpoint",
    "InclusionProof",
    "KeyFileError",
    "open_audit_log",
    "pseudonym_key_file",
]


def pseudonym_key_file(settings: Settings) -> Path:
    """Where the HMAC key that pseudonymises account numbers lives (0600, created on first use)."""
    return settings.pseudonym_key_file or settings.data_dir / "audit_pseudonym.key"


async def open_audit_log(db: Database, settings: Settings, **options: Any) -> AuditLog:
    """The audit log of this installation, keys loaded (or created) from the data directory."""
    signer = Signer.from_file(settings.effective_audit_key_file, settings.audit_origin)
    key = load_or_create_secret(pseudonym_key_file(settings))
    options.setdefault("node_id", f"{settings.effective_node_id}/{os.getpid()}")
    return await AuditLog.open(db, signer, key, **options)
