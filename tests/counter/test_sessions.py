"""Counter sessions opened for signaling calls, on both back-ends."""

from __future__ import annotations

import asyncio

import pytest

from counter.sessions import CounterSessions, Level, SessionError
from counter.storage import Database


async def test_open_for_call_opens_hands_over_and_claims(db: Database) -> None:
    sessions = CounterSessions(db)
    first = await sessions.open_for_call("call-a", "agent1", "+86 139-0013-9000")
    assert (first.id, first.agent, first.account, first.level) == ("call-a", "agent1", "13900139000", Level.A0)
    # The hook and the console racing for the same call end with one session.
    both = await asyncio.gather(sessions.open_for_call("call-b", "agent1"), sessions.open_for_call("call-b", "agent1"))
    assert {s.id for s in both} == {"call-b"} and both[0].account is None
    assert (await sessions.open_for_call("call-b", "agent1", "not a number")).account is None
    # Transferred: the new agent gets the session, the claim and level stay, a note says so.
    await sessions.set_face_consent("call-a", True)
    await sessions.raise_level("call-a", Level.A1, [], "password")
    moved = await sessions.open_for_call("call-a", "agent2", "13800138000")
    assert moved.agent == "agent2" and moved.account == "13900139000" and moved.level == Level.A1
    assert moved.notes[-1]["author"] == "system" and "agent1 to agent2" in moved.notes[-1]["text"]
    # Opened first: the same session.
    opened = await sessions.open("call-c", "agent1")
    assert (await sessions.open_for_call("call-c", "agent1", "13700137000")).id == opened.id
    # A closed session is not reopened or handed over.
    await sessions.close("call-c", "done")
    assert (await sessions.open_for_call("call-c", "agent2")).agent == "agent1"


async def test_a_session_ends_with_its_call(db: Database) -> None:
    """After the call ends the session proves, claims and changes nothing; the wrap-up still closes it."""
    sessions = CounterSessions(db)
    await sessions.open_for_call("call-e", "agent1", "13800138000", face_consent=True)
    await sessions.raise_level("call-e", Level.A1, [], "password")
    ended = await sessions.end_call("call-e")
    assert ended is not None and ended.open and not ended.live and ended.call_ended_at is not None
    assert ended.effective_level(for_change=False)[0] == Level.A0
    with pytest.raises(SessionError, match="has ended"):
        await sessions.raise_level("call-e", Level.A1, [], "password")
    with pytest.raises(SessionError, match="has ended"):
        await sessions.claim_account("call-e", "13900139000")
    # Not handed to another agent either, nor reopened.
    assert (await sessions.open_for_call("call-e", "agent2")).agent == "agent1"
    assert await sessions.end_call("never-accepted") is None
    closed = await sessions.close("call-e", "resolved")
    assert closed.closed_at is not None


async def test_customer_face_answer_and_the_declined_path(db: Database) -> None:
    """The customer's on-screen answer fills the session, a decline always wins; on the declined path
    the ID card step (A3) needs the agent's attestation (A2) first, and face proofs are refused."""
    sessions = CounterSessions(db)
    opened = await sessions.open_for_call("call-f", "agent1", "13800138000", face_consent=True)
    assert opened.face_consent is True
    assert (await sessions.open_for_call("call-f", "agent1", face_consent=False)).face_consent is False
    assert (await sessions.open_for_call("call-f", "agent1", face_consent=True)).face_consent is False
    assert (await sessions.open_for_call("call-f", "agent1")).face_consent is False
    with pytest.raises(SessionError, match="not consented to face processing"):
        await sessions.raise_level("call-f", Level.A2, ["a" * 64], "face")
    with pytest.raises(SessionError, match="A1 first"):
        await sessions.raise_level("call-f", Level.A3, ["a" * 64], "idcard_attested")
    await sessions.raise_level("call-f", Level.A1, [], "password")
    with pytest.raises(SessionError, match="attestation"):
        await sessions.raise_level("call-f", Level.A3, ["a" * 64], "idcard_attested")
    await sessions.raise_level("call-f", Level.A2, ["b" * 64], "attestation")
    done = await sessions.raise_level("call-f", Level.A3, ["a" * 64], "idcard_attested")
    assert (done.level, done.level_method) == (Level.A3, "idcard_attested")
