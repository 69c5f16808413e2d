"""Counter sessions: one per call (the session id is the call id).

A session holds who the customer claims to be (the account), the face-processing consent, the
identity evidence gathered and the assurance level it reached (:class:`Level`, with the time of the
proof), the transactions done, the agent's notes, the wrap-up code and the customer's rating.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from counter.audit.entry import AuditEvent, AuditReceipt
from counter.levels import PROOF_MAX_AGE, Level, Method, WhyNot, effective_level, step_refusal
from counter.proofs import SessionProofs, unproven
from storage import Database, Executor, IntegrityError, Row
from storage.timeutil import iso

_MSISDN = re.compile(r"1[3-9]\d{9}")

#: How each method may raise the level (the highest level it proves on its own).
METHODS: dict[str, str] = {m.value: m.text for m in Method}


class SessionError(Exception):
    """A session operation was refused; the message says why and what to do, ``code`` names the rule."""

    def __init__(self, reason: str, code: str = "session") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    @classmethod
    def of(cls, why: WhyNot) -> SessionError:
        return cls(why.en, why.code)


class SessionNotFound(SessionError):
    pass


@dataclass(frozen=True)
class Evidence:
    """One identity proof recorded in a session."""

    level: Level
    method: str
    evidence: tuple[str, ...]
    subject: str
    recorded_by: str
    at: str


@dataclass(frozen=True)
class CounterSession:
    id: str
    agent: str
    account: str | None
    claimed_name: str
    face_consent: bool | None
    level: Level
    level_method: str
    level_at: str | None
    notes: tuple[dict[str, str], ...]
    wrap_up: str | None
    rating: int | None
    rating_comment: str | None
    created_at: str
    closed_at: str | None
    evidence: tuple[Evidence, ...] = field(default=())
    call_ended_at: str | None = None
    #: When the customer gave the face-processing answer (their own screen, or aloud to the agent).
    face_consent_at: str | None = None

    @property
    def open(self) -> bool:
        """Not wrapped up yet (notes and the wrap-up code may still be added)."""
        return self.closed_at is None

    @property
    def live(self) -> bool:
        """Open and its call not ended: only a live session reads accounts, proves or changes anything."""
        return self.closed_at is None and self.call_ended_at is None

    def evidence_hashes(self, min_level: Level = Level.A0, subject: str = "holder") -> list[str]:
        """The sha256 hashes of evidence of at least ``min_level`` about ``subject``."""
        return [h for e in self.evidence if e.level >= min_level and e.subject == subject for h in e.evidence]

    def effective_level(self, *, for_change: bool, now: datetime | None = None) -> tuple[Level, WhyNot | None]:
        """The level a transaction may rely on now, and why it is lower (:func:`counter.levels.effective_level`)."""
        return effective_level(self, for_change=for_change, now=now)


def _session(row: Row, evidence: Sequence[Row]) -> CounterSession:
    consent = row["face_consent"]
    return CounterSession(
        id=row["id"],
        agent=row["agent"],
        account=row["account"],
        claimed_name=row["claimed_name"],
        face_consent=None if consent is None else bool(consent),
        level=Level(int(row["level"])),
        level_method=row["level_method"],
        level_at=row["level_at"],
        notes=tuple(json.loads(row["notes"])),
        wrap_up=row["wrap_up"],
        rating=row["rating"],
        rating_comment=row["rating_comment"],
        created_at=row["created_at"],
        closed_at=row["closed_at"],
        call_ended_at=row["call_ended_at"],
        face_consent_at=row.get("face_consent_at"),
        evidence=tuple(
            Evidence(
                Level(int(e["level"])),
                e["method"],
                tuple(json.loads(e["evidence"])),
                e["subject"],
                e["recorded_by"],
                e["at"],
            )
            for e in evidence
        ),
    )


class LevelAudit(Protocol):
    """What sessions need of the audit log (:class:`counter.audit.AuditLog`): an entry in a transaction."""

    async def append_in(self, tx: Executor, event: AuditEvent) -> AuditReceipt: ...


class CounterSessions:
    """Counter sessions kept in the database (``counter_sessions``, ``session_evidence``).

    Every change of a session's level (raised by a proof, dropped by a new claim) is one
    ``session.level`` audit entry, written here in the same database transaction as the change.
    """

    def __init__(self, db: Database, audit: LevelAudit) -> None:
        self.db = db
        self.audit = audit
        self.proofs = SessionProofs(db)

    async def open(
        self,
        call_id: str,
        agent: str,
        account: str | None = None,
        face_consent: bool | None = None,
        face_consent_at: str | None = None,
    ) -> CounterSession:
        """Record the session of a call.  Only :meth:`open_for_call` (a call this agent accepted) is
        reached from the web; this is the storage step beneath it.

        ``account``: the line the customer claims, if known already (level A0 all the same);
        ``face_consent``: the customer's answer to the face-processing question, if given already, and
        ``face_consent_at`` when they gave it (default: now).  The customer authenticates with the
        call's signaling join token, so none is minted here.
        """
        if not call_id or len(call_id) > 100:
            raise SessionError("a call id of 1 to 100 characters is needed")
        try:
            await self.db.execute(
                "INSERT INTO counter_sessions (id, agent, customer_token_hash, created_at, account, face_consent,"
                " face_consent_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                call_id,
                agent,
                # the column predates join-token binding: a value no token hashes to
                "unused:" + secrets.token_hex(8),
                iso(),
                account,
                None if face_consent is None else int(face_consent),
                None if face_consent is None else face_consent_at or iso(),
            )
        except IntegrityError as exc:
            raise SessionError(f"call {call_id} already has a counter session") from exc
        return await self.get(call_id)

    async def open_for_call(
        self,
        call_id: str,
        agent: str,
        claimed: str | None = None,
        face_consent: bool | None = None,
        face_consent_at: str | None = None,
    ) -> CounterSession:
        """The session of a call an agent has just accepted: opened if new, handed over if transferred.

        Called by the signaling side (the call's own events), so no customer token is minted: the
        customer uses the call's join token.  ``claimed``, a mainland mobile number the customer gave
        when joining, is recorded as the claimed account (level A0) if none is claimed yet.
        ``face_consent``, the customer's own on-screen answer, fills an unanswered session, and a
        decline always wins (consent can be withdrawn, never presumed); ``face_consent_at`` is when the
        customer answered (their join), recorded as the answer's time rather than this later moment.
        """
        number = re.sub(r"\D", "", claimed or "")
        number = number[2:] if len(number) == 13 and number.startswith("86") else number
        account = number if _MSISDN.fullmatch(number) else None
        try:
            session = await self.get(call_id)
        except SessionNotFound:
            try:
                session = await self.open(call_id, agent, account, face_consent, face_consent_at)
            except SessionError:  # opened meanwhile (the console asked for it): take that one
                session = await self.get(call_id)
        if not session.live:
            return session
        if session.agent != agent:
            await self.db.execute("UPDATE counter_sessions SET agent = $2 WHERE id = $1", call_id, agent)
            session = await self.add_note(call_id, "system", f"call transferred from {session.agent} to {agent}")
        if session.account is None and account is not None:
            session = await self.claim_account(call_id, account)
        if face_consent is not None and session.face_consent is not face_consent:
            if session.face_consent is None or face_consent is False:
                session = await self.set_face_consent(call_id, face_consent, face_consent_at)
        return session

    async def get(self, session_id: str) -> CounterSession:
        row = await self.db.fetchrow("SELECT * FROM counter_sessions WHERE id = $1", session_id)
        if row is None:
            raise SessionNotFound(f"no counter session {session_id!r}: open one for the call first")
        evidence = await self.db.fetch(
            "SELECT level, method, evidence, subject, recorded_by, at FROM session_evidence"
            " WHERE session_id = $1 ORDER BY id",
            session_id,
        )
        return _session(row, evidence)

    async def end_call(self, call_id: str) -> CounterSession | None:
        """The session's call ended: from now on it proves, reads and changes nothing (wrap-up only).

        ``None`` if the call never had a session (no agent accepted it).
        """
        await self.db.execute(
            "UPDATE counter_sessions SET call_ended_at = $2 WHERE id = $1 AND call_ended_at IS NULL", call_id, iso()
        )
        try:
            return await self.get(call_id)
        except SessionNotFound:
            return None

    async def _open_session(self, session_id: str) -> CounterSession:
        session = await self.get(session_id)
        if not session.open:
            raise SessionError(f"session {session_id} is closed; open a new one")
        return session

    async def _live_session(self, session_id: str) -> CounterSession:
        session = await self._open_session(session_id)
        if not session.live:
            raise SessionError(f"the call of session {session_id} has ended: nothing more can be proved in it")
        return session

    async def claim_account(self, session_id: str, msisdn: str, claimed_name: str = "") -> CounterSession:
        """Record the account the customer says is theirs.  Changing it drops the level to A0."""
        session = await self._live_session(session_id)
        if session.account != msisdn:
            async with self.db.transaction() as tx:
                await tx.execute(
                    "UPDATE counter_sessions SET account = $2, claimed_name = $3, level = 0, level_method = '',"
                    " level_at = NULL WHERE id = $1",
                    session_id,
                    msisdn,
                    claimed_name,
                )
                if session.level > Level.A0:
                    await self.audit.append_in(tx, AuditEvent(
                        "session.level", "system", "system", session_id=session_id, account=session.account,
                        details={"level_before": str(session.level), "level": str(Level.A0),
                                 "because": "another line claimed"},
                    ))
        return await self.get(session_id)

    async def set_face_consent(self, session_id: str, consent: bool, at: str | None = None) -> CounterSession:
        """Record the customer's answer to the face-processing consent question, given ``at`` (default now)."""
        await self._live_session(session_id)
        await self.db.execute(
            "UPDATE counter_sessions SET face_consent = $2, face_consent_at = $3 WHERE id = $1",
            session_id,
            int(consent),
            at or iso(),
        )
        return await self.get(session_id)

    async def raise_level(
        self,
        session_id: str,
        level: Level,
        evidence: Sequence[str] = (),
        method: str = "face",
        recorded_by: str = "system",
        subject: str = "holder",
    ) -> CounterSession:
        """Record an identity proof; raise the session's level to ``level`` (refreshing its time).

        ``method`` is one of :data:`METHODS`; whether the step is possible now is
        :func:`counter.levels.step_refusal`'s answer.  ``evidence`` must be proofs this server computed or
        stored in this session (:attr:`proofs`), of the kinds the method needs.  Proofs about another
        person (``subject`` other than ``holder``, e.g. ``new_holder:<ID number>`` for a transfer) are
        recorded without changing the level.  Written with one ``session.level`` audit entry naming
        the evidence, in the same transaction.
        """
        session = await self._live_session(session_id)
        try:
            step = Method(method)
        except ValueError:
            raise SessionError(f"unknown method {method!r}; use one of {', '.join(METHODS)}") from None
        if level > step.proves:
            raise SessionError(f"{method} proves at most {step.proves}, not {level}")
        for sha in evidence:
            if len(sha) != 64 or not set(sha) <= set("0123456789abcdef"):
                raise SessionError(f"evidence {sha!r}: give the lowercase sha256 hex of the image")
        if (why := step_refusal(session, step, subject=subject)) is not None:
            raise SessionError.of(why)
        now = iso()
        holder = subject == "holder"
        new_level = max(level, session.level) if holder else session.level
        async with self.db.transaction() as tx:
            problem = unproven(step, evidence, await self.proofs.of_session(session_id, ex=tx))
            if problem is not None:
                raise SessionError(problem, "unproven")
            await tx.execute(
                "INSERT INTO session_evidence (session_id, level, method, evidence, subject, recorded_by, at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                session_id,
                int(level),
                step.value,
                json.dumps(list(evidence)),
                subject,
                recorded_by,
                now,
            )
            if holder:
                await tx.execute(
                    "UPDATE counter_sessions SET level = $2, level_method = $3, level_at = $4 WHERE id = $1",
                    session_id,
                    int(new_level),
                    step.value if level >= session.level else session.level_method,
                    now if level >= Level.A2 or new_level < Level.A2 else session.level_at,
                )
            details: dict[str, str] = {"level_before": str(session.level), "level": str(new_level),
                                       "method": step.value, "proves": str(level),
                                       "subject": "holder" if holder else subject.split(":", 1)[0]}
            if step.declined_path:
                details["identity_path"] = "face declined, agent attestation"
            await self.audit.append_in(tx, AuditEvent(
                "session.level", "system" if recorded_by == "system" else "agent", recorded_by,
                session_id=session_id, account=session.account, details=details, evidence=list(evidence),
                personal={} if holder else {"subject": subject},
            ))
        return await self.get(session_id)

    async def add_note(self, session_id: str, author: str, text: str) -> CounterSession:
        session = await self._open_session(session_id)
        notes = [*session.notes, {"at": iso(), "author": author, "text": text[:2000]}]
        await self.db.execute(
            "UPDATE counter_sessions SET notes = $2 WHERE id = $1", session_id, json.dumps(notes, ensure_ascii=False)
        )
        return await self.get(session_id)

    async def rate(self, session_id: str, rating: int, comment: str = "") -> CounterSession:
        """The customer's satisfaction rating, 1 (bad) to 5 (very good)."""
        if not 1 <= rating <= 5:
            raise SessionError("a rating is 1 to 5")
        await self.get(session_id)
        await self.db.execute(
            "UPDATE counter_sessions SET rating = $2, rating_comment = $3 WHERE id = $1",
            session_id,
            rating,
            comment[:500],
        )
        return await self.get(session_id)

    async def close(self, session_id: str, wrap_up: str) -> CounterSession:
        """End the session with a wrap-up code; its evidence no longer counts."""
        await self._open_session(session_id)
        await self.db.execute(
            "UPDATE counter_sessions SET wrap_up = $2, closed_at = $3 WHERE id = $1", session_id, wrap_up[:100], iso()
        )
        return await self.get(session_id)

    async def transactions(self, session_id: str) -> list[Row]:
        """The transactions requested in the session, oldest first."""
        return await self.db.fetch(
            "SELECT id, code, status, reason, result, created_at, finished_at FROM tx_requests"
            " WHERE session_id = $1 ORDER BY id",
            session_id,
        )


__all__ = [
    "METHODS",
    "PROOF_MAX_AGE",
    "CounterSession",
    "CounterSessions",
    "Evidence",
    "Level",
    "LevelAudit",
    "SessionError",
    "SessionNotFound",
]
