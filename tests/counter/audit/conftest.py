"""Audit fixtures: a started log on each back-end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from counter.audit import AuditEvent, AuditLog
from counter.audit.keys import Signer
from storage import Database

PSEUDONYM_KEY = b"k" * 32


def event(i: int, **kw: object) -> AuditEvent:
    """A valid event numbered ``i`` (actor and account cycle with it), changed by ``kw``."""
    base: dict[str, object] = {
        "action": "transaction.puk.query",
        "actor_role": "agent",
        "actor_id": f"agent{i % 3}",
        "account": f"1380000{i % 5:04d}",
        "details": {"i": i},
    }
    base.update(kw)
    return AuditEvent(**base)  # type: ignore[arg-type]


@pytest.fixture
def signer() -> Signer:
    return Signer.generate()


@pytest.fixture
async def audit(db: Database, signer: Signer) -> AsyncIterator[AuditLog]:
    """An audit log that checkpoints after every batch."""
    log = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    yield log
    await log.close()
