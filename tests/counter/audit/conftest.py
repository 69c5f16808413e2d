"""Audit fixtures: a started log on each back-end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from counter.audit import AuditLog
from counter.audit.keys import Signer
from storage import Database

PSEUDONYM_KEY = b"k" * 32


@pytest.fixture
def signer() -> Signer:
    return Signer.generate()


@pytest.fixture
async def audit(db: Database, signer: Signer) -> AsyncIterator[AuditLog]:
    """An audit log that checkpoints after every batch."""
    log = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    yield log
    await log.close()


async def roll_back(db: Database, size: int) -> None:
    """What restoring an older copy of the database does to the log."""
    await db.execute("DELETE FROM audit_entries WHERE seq >= $1", size)
    await db.execute("DELETE FROM audit_checkpoints WHERE tree_size > $1", size)
    await db.execute("DELETE FROM audit_tiles")
