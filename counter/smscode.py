"""A1 by a one-time SMS code sent to the claimed line.

The agent asks for a code: six random digits go to the line through the SMS outbox (the built-in
gateway), stored only as an argon2 hash, valid :data:`CODE_TTL`.  The customer reads it out (or
types it on their screen) and the agent enters it; a right code raises the session to A1 with method
``sms_code``.  A code is used once, allows :data:`MAX_ATTEMPTS` wrong tries, and a session may ask
for :data:`MAX_SENDS` codes.  Every send and every try is audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from counter.accounts import AccountSystem, LineStatus, check_password, hash_password
from counter.audit import AuditEvent
from counter.levels import Method, step_refusal
from counter.proofs import ProofKind
from counter.sessions import CounterSession, CounterSessions, Level, SessionError
from counter.sms import queue_sms
from counter.transactions.engine import AuditSink
from signaling.errors import CodedError
from storage import Database
from storage.timeutil import iso, parse_iso, utcnow

CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
MAX_SENDS = 3
#: The SMS; ``{code}`` and ``{minutes}`` are filled in.
TEXT_ZH = "【远程柜台】您的验证码是{code}，{minutes}分钟内有效。只告诉正在与您视频的工作人员，不要告诉其他人。"


class SmsCodeError(CodedError):
    """A code could not be sent or was not accepted; ``code`` names why, the message says what to do."""

    def __init__(self, code: str, reason: str, attempts_left: int | None = None) -> None:
        super().__init__(code, reason)
        self.attempts_left = attempts_left


@dataclass(frozen=True)
class SentCode:
    """What the agent's screen shows after sending: never the code itself."""

    sent_to: str
    expires_at: str
    sends_left: int


def mask(msisdn: str) -> str:
    return msisdn[:3] + "****" + msisdn[-4:]


class SmsCodes:
    """One-time SMS codes of counter sessions (``session_sms_codes``)."""

    def __init__(self, db: Database, accounts: AccountSystem, sessions: CounterSessions, audit: AuditSink) -> None:
        self.db = db
        self.accounts = accounts
        self.sessions = sessions
        self.audit = audit

    def _event(self, action: str, session: CounterSession, actor: str, outcome: str = "ok",
               reason: str | None = None, **details: object) -> AuditEvent:
        return AuditEvent(action, "agent", actor, outcome=outcome, session_id=session.id, account=session.account,
                          details=details, reason=reason)

    async def send(self, session_id: str, actor: str, now: datetime | None = None) -> SentCode:
        """Send a fresh code to the session's claimed line; earlier codes of the session stop working."""
        now = now or utcnow()
        session = await self.sessions.get(session_id)
        if not session.open:
            raise SmsCodeError("session_closed", "the session is closed; start a new one")
        if session.account is None:
            raise SmsCodeError("no_account", "claim the customer's line first: the code goes to that line")
        account = await self.accounts.get(session.account)
        if account is None:
            raise SmsCodeError("no_account", f"no line {session.account}: check the number with the customer")
        if account.status in (LineStatus.LOST, LineStatus.CLOSED):
            raise SmsCodeError(
                "line_unusable",
                f"the line is {account.status.value}: a code would not reach the customer safely; "
                "use the service password or the face check",
            )
        sent = int(await self.db.fetchval("SELECT COUNT(*) FROM session_sms_codes WHERE session_id = $1", session_id))
        if sent >= MAX_SENDS:
            raise SmsCodeError(
                "too_many_codes", f"{MAX_SENDS} codes were sent in this session; use another way to prove identity"
            )
        code = f"{secrets.randbelow(1_000_000):06d}"
        code_hash = await hash_password(code)
        expires = iso(now + CODE_TTL)
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE session_sms_codes SET used_at = $2 WHERE session_id = $1 AND used_at IS NULL",
                session_id,
                "superseded:" + iso(now),
            )
            await tx.execute(
                "INSERT INTO session_sms_codes (session_id, msisdn, code_hash, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                session_id,
                account.msisdn,
                code_hash,
                iso(now),
                expires,
            )
            body = TEXT_ZH.format(code=code, minutes=int(CODE_TTL.total_seconds() // 60))
            await queue_sms(tx, account.msisdn, body, now)
            await self.audit.append_in(
                tx, self._event("identity.sms_code.sent", session, actor, expires_at=expires, n=sent + 1)
            )
        return SentCode(mask(account.msisdn), expires, MAX_SENDS - sent - 1)

    async def verify(self, session_id: str, code: str, actor: str, now: datetime | None = None) -> CounterSession:
        """Check the code the customer gave; a right one raises the session to A1 (``sms_code``)."""
        now = now or utcnow()
        session = await self.sessions.get(session_id)
        if (why := step_refusal(session, Method.SMS_CODE)) is not None:  # before the try is counted and audited
            raise SessionError.of(why)
        row = await self.db.fetchrow(
            "SELECT * FROM session_sms_codes WHERE session_id = $1 AND used_at IS NULL ORDER BY id DESC LIMIT 1",
            session_id,
        )
        if row is None:
            raise SmsCodeError("no_code", "no code is waiting in this session: send one first")
        refusal: SmsCodeError | None = None
        if parse_iso(row["expires_at"]) < now:
            refusal = SmsCodeError("expired", "the code has expired: send a new one")
        elif row["msisdn"] != session.account:
            refusal = SmsCodeError("other_line", "the code was sent to another line than the one claimed now")
        elif int(row["attempts"]) >= MAX_ATTEMPTS:
            refusal = SmsCodeError("locked", f"{MAX_ATTEMPTS} wrong codes: send a new one")
        ok = refusal is None and len(code) == 6 and await check_password(row["code_hash"], code)
        async with self.db.transaction() as tx:
            # Count the try first: concurrent tries cannot exceed the limit, and a code is used once.
            counted = await tx.execute(
                "UPDATE session_sms_codes SET attempts = attempts + 1, used_at = $3"
                " WHERE id = $1 AND used_at IS NULL AND attempts < $2",
                row["id"],
                MAX_ATTEMPTS,
                iso(now) if ok else None,
            )
            if refusal is None and counted != 1:
                refusal = SmsCodeError("locked", "the code was used or locked meanwhile: send a new one")
            if refusal is None and not ok:
                left = MAX_ATTEMPTS - int(row["attempts"]) - 1
                refusal = SmsCodeError(
                    "wrong_code",
                    f"the code is wrong; {left} tries left" if left else "the code is wrong; send a new one",
                    attempts_left=left,
                )
            event = self._event(
                "identity.sms_code.verify",
                session,
                actor,
                outcome="ok" if refusal is None else "refused",
                reason=refusal.reason if refusal else None,
                attempt=int(row["attempts"]) + 1,
            )
            await self.audit.append_in(tx, event)
            if refusal is None:  # the code was right, and used now: the server's own check, as evidence
                proof = await self.sessions.proofs.record_check(session_id, ProofKind.SMS_CODE, ex=tx)
        if refusal is not None:
            raise refusal
        return await self.sessions.raise_level(session_id, Level.A1, [proof.sha], "sms_code", recorded_by=actor)
