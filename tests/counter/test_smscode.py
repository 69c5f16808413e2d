"""A1 by one-time SMS code on both back-ends: outbox, hashed storage, expiry, attempts, single use, audit."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from counter.accounts import LineStatus
from counter.proofs import ProofKind
from counter.sessions import Level
from counter.smscode import CODE_TTL, MAX_ATTEMPTS, MAX_SENDS, SmsCodeError, SmsCodes
from storage import Database
from storage.timeutil import utcnow
from tests.counter.txkit import Kit, open_kit

MSISDN = "13800138000"


async def _last_code(kit: Kit, msisdn: str = MSISDN) -> str:
    body = await kit.db.fetchval("SELECT body FROM sms_outbox WHERE msisdn = $1 ORDER BY id DESC LIMIT 1", msisdn)
    match = re.search(r"验证码是(\d{6})", str(body))
    assert match, body
    return match.group(1)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_code_raises_to_a1_once(db: Database) -> None:
    async with open_kit(db, MSISDN) as kit:
        codes = SmsCodes(db, kit.accounts, kit.sessions, kit.audit)
        session = await kit.session(None, Level.A0)
        with pytest.raises(SmsCodeError, match="claim the customer's line first"):
            await codes.send(session.id, "agent1")
        await kit.sessions.claim_account(session.id, MSISDN)
        with pytest.raises(SmsCodeError, match="send one first"):
            await codes.verify(session.id, "123456", "agent1")
        sent = await codes.send(session.id, "agent1")
        assert sent.sent_to == "138****8000" and sent.sends_left == MAX_SENDS - 1
        code = await _last_code(kit)
        stored = await db.fetchrow("SELECT * FROM session_sms_codes WHERE session_id = $1", session.id)
        assert stored is not None and code not in str(stored.values()) and stored["code_hash"].startswith("$argon2")
        with pytest.raises(SmsCodeError) as wrong:
            await codes.verify(session.id, _wrong(code), "agent1")
        assert wrong.value.code == "wrong_code" and wrong.value.attempts_left == MAX_ATTEMPTS - 1
        assert (await kit.sessions.get(session.id)).level == Level.A0
        raised = await codes.verify(session.id, code, "agent1")
        assert raised.level == Level.A1 and raised.level_method == "sms_code"
        assert raised.evidence[-1].method == "sms_code" and raised.evidence[-1].recorded_by == "agent1"
        with pytest.raises(SmsCodeError, match="send one first"):  # used once
            await codes.verify(session.id, code, "agent1")
        actions = await db.fetch(
            "SELECT action, outcome FROM audit_entries WHERE session_id = $1 ORDER BY seq", session.id
        )
        assert [(a["action"], a["outcome"]) for a in actions] == [
            ("identity.sms_code.sent", "ok"),
            ("identity.sms_code.verify", "refused"),
            ("identity.sms_code.verify", "ok"),
            ("session.level", "ok"),  # the level change: one entry, naming the server's own check
        ]
        [proof] = await kit.sessions.proofs.of_session(session.id, [ProofKind.SMS_CODE])
        assert raised.evidence[-1].evidence == (proof.sha,)


async def test_expiry_attempts_resend_and_limits(db: Database) -> None:
    async with open_kit(db, MSISDN) as kit:
        codes = SmsCodes(db, kit.accounts, kit.sessions, kit.audit)
        # Expired after five minutes.
        session = await kit.session(MSISDN, Level.A0)
        t0 = utcnow()
        await codes.send(session.id, "agent1", now=t0)
        code = await _last_code(kit)
        with pytest.raises(SmsCodeError, match="expired"):
            await codes.verify(session.id, code, "agent1", now=t0 + CODE_TTL + timedelta(seconds=1))
        # A new code supersedes the old one; the session may ask for MAX_SENDS codes in all.
        await codes.send(session.id, "agent1")
        first = await _last_code(kit)
        last = await codes.send(session.id, "agent1")
        assert last.sends_left == 0
        second = await _last_code(kit)
        if first != second:
            with pytest.raises(SmsCodeError, match="wrong"):
                await codes.verify(session.id, first, "agent1")
        with pytest.raises(SmsCodeError, match="3 codes were sent"):
            await codes.send(session.id, "agent1")
        # Locked after MAX_ATTEMPTS wrong tries, even for the right code then.
        locked = await kit.session(MSISDN, Level.A0)
        await codes.send(locked.id, "agent1")
        code = await _last_code(kit)
        for _ in range(MAX_ATTEMPTS):
            with pytest.raises(SmsCodeError, match="wrong"):
                await codes.verify(locked.id, _wrong(code), "agent1")
        with pytest.raises(SmsCodeError) as exc:
            await codes.verify(locked.id, code, "agent1")
        assert exc.value.code == "locked"
        assert (await kit.sessions.get(locked.id)).level == Level.A0
        # Claiming another line after the send: the code proves nothing about it.
        other = "13900139000"
        await kit.account(other)
        moved = await kit.session(MSISDN, Level.A0)
        await codes.send(moved.id, "agent1")
        code = await _last_code(kit)
        await kit.sessions.claim_account(moved.id, other)
        with pytest.raises(SmsCodeError, match="another line"):
            await codes.verify(moved.id, code, "agent1")
        # A lost SIM gets no code.
        await kit.set_line(other, status=LineStatus.LOST, status_before_loss=LineStatus.ACTIVE)
        with pytest.raises(SmsCodeError) as exc:
            await codes.send((await kit.session(other, Level.A0)).id, "agent1")
        assert exc.value.code == "line_unusable"


async def test_right_code_entered_twice_at_once_counts_once(db: Database) -> None:
    async with open_kit(db, MSISDN) as kit:
        codes = SmsCodes(db, kit.accounts, kit.sessions, kit.audit)
        session = await kit.session(MSISDN, Level.A0)
        await codes.send(session.id, "agent1")
        code = await _last_code(kit)
        results = await asyncio.gather(*(codes.verify(session.id, code, "agent1") for _ in range(3)),
                                       return_exceptions=True)
        assert sum(not isinstance(r, BaseException) for r in results) == 1, results
        assert all(isinstance(r, SmsCodeError) for r in results if isinstance(r, BaseException))
        ok = await db.fetchval(
            "SELECT COUNT(*) FROM audit_entries WHERE session_id = $1 AND action = 'identity.sms_code.verify'"
            " AND outcome = 'ok'",
            session.id,
        )
        assert int(ok) == 1
