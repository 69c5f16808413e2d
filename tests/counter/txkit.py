"""A real transaction stack (storage, accounts, sessions, audit log, engine) for the counter tests."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from counter.accounts import Account, LineStatus, StorageAccountSystem
from counter.audit import AuditLog
from counter.audit.keys import Signer
from counter.proofs import ProofKind
from counter.sessions import CounterSession, CounterSessions, Level
from counter.transactions.engine import TransactionEngine, TxOutcome, TxStatus
from counter.workorders import WorkOrders
from storage import Database

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(birth: str, serial: str = "123") -> str:
    """A valid ID number for a birth date ``YYYYMMDD``."""
    body = f"110101{birth}{serial}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def record_proofs(sessions: CounterSessions, session_id: str, *kinds: ProofKind) -> list[str]:
    """Record one proof of each kind in the session (as the identity checks do, for images this
    server kept); their shas."""
    shas = [sha(f"{session_id}{kind}{uuid.uuid4().hex}") for kind in kinds]
    for kind, digest in zip(kinds, shas, strict=True):
        await sessions.proofs.record(session_id, kind, [digest])
    return shas


async def raise_on_proofs(
    sessions: CounterSessions, session_id: str, level: Level, method: str, *kinds: ProofKind,
    recorded_by: str = "system",
) -> CounterSession:
    """Record one proof of each kind and raise the session's level on them."""
    shas = await record_proofs(sessions, session_id, *kinds)
    return await sessions.raise_level(session_id, level, shas, method, recorded_by=recorded_by)


@dataclass
class Kit:
    db: Database
    audit: AuditLog
    accounts: StorageAccountSystem
    sessions: CounterSessions
    workorders: WorkOrders
    engine: TransactionEngine

    async def account(self, msisdn: str = "13800138000", **kw: Any) -> Account:
        kw.setdefault("name", "张三")
        kw.setdefault("id_number", id_number("19600307"))
        kw.setdefault("birth_date", "1960-03-07")
        kw.setdefault("balance_cents", 5000)
        kw.setdefault("credit_limit_cents", 10000)
        kw.setdefault("points", 5000)
        kw.setdefault("addons", ("caller-id",))
        kw.setdefault("contact_email", "zhang@example.cn")
        account = await self.accounts.create(msisdn=msisdn, password="246810", **kw)
        await self.accounts.add_bill(msisdn, "2026-09", 3900, True, [{"item": "plan", "cents": 3900}])
        await self.accounts.add_bill(msisdn, "2026-10", 4200, False, [{"item": "plan", "cents": 4200}])
        await self.accounts.add_payment(msisdn, "2026-10-05T08:00:00+00:00", 3900, "wechat")
        return account

    async def set_line(self, msisdn: str, **fields: Any) -> None:
        async with self.accounts.change(msisdn) as change:
            await change.update_line(**fields)

    async def session(self, msisdn: str | None, level: Level, agent: str = "agent1") -> CounterSession:
        """An open session on ``msisdn`` with the holder proven to ``level`` (face path)."""
        session = await self.sessions.open(f"call-{uuid.uuid4().hex[:10]}", agent)
        if msisdn is None:
            return session
        session = await self.sessions.claim_account(session.id, msisdn)
        session = await self.sessions.set_face_consent(session.id, True)
        steps = [(Level.A1, "password", [ProofKind.PASSWORD]), (Level.A2, "face", [ProofKind.FACE_MATCH,
                 ProofKind.LIVENESS]), (Level.A3, "idcard", [ProofKind.ID_CARD, ProofKind.FACE_MATCH])]
        for step, method, kinds in steps:
            if step <= level:
                shas = await self.prove(session.id, *kinds)
                session = await self.sessions.raise_level(session.id, step, shas, method)
        return session

    async def prove(self, session_id: str, *kinds: ProofKind) -> list[str]:
        """Record one proof of each kind in the session (as the identity checks do); their shas."""
        return await record_proofs(self.sessions, session_id, *kinds)

    async def run(
        self, session: CounterSession, code: str, inputs: dict[str, Any], key: str | None = None
    ) -> TxOutcome:
        """Request, confirm as the customer and approve as a supervisor, as the code needs."""
        outcome = await self.engine.request(session.id, code, inputs, key or uuid.uuid4().hex, session.agent)
        if outcome.status == TxStatus.PENDING:
            outcome = await self.engine.confirm(outcome.id, session.id, True)
        if outcome.status == TxStatus.PENDING and outcome.needs_approval:
            outcome = await self.engine.approve(outcome.id, "super1")
        return outcome

    async def audit_count(self, session_id: str | None = None, action: str = "transaction.%") -> int:
        """Audit entries (of the transactions, unless ``action`` says otherwise: a SQL LIKE pattern)."""
        if session_id is None:
            return int(await self.db.fetchval("SELECT COUNT(*) FROM audit_entries WHERE action LIKE $1", action))
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM audit_entries WHERE session_id = $1 AND action LIKE $2", session_id, action
        ))

    async def version(self, msisdn: str) -> int:
        account = await self.accounts.get(msisdn)
        return account.version if account else -1


async def make_kit(db: Database) -> Kit:
    audit = await AuditLog.open(db, Signer.generate(), b"k" * 32)
    accounts = StorageAccountSystem(db)
    sessions = CounterSessions(db, audit)
    workorders = WorkOrders(db)
    engine = TransactionEngine(db, accounts, sessions, workorders, audit)
    return Kit(db, audit, accounts, sessions, workorders, engine)


@asynccontextmanager
async def open_kit(db: Database, *lines: str) -> AsyncIterator[Kit]:
    """:func:`make_kit` with an account for each of ``lines``; its audit log closed at the end."""
    kit = await make_kit(db)
    try:
        for msisdn in lines:
            await kit.account(msisdn)
        yield kit
    finally:
        await kit.audit.close()


__all__ = ["Kit", "LineStatus", "ProofKind", "id_number", "make_kit", "open_kit", "raise_on_proofs", "sha"]
