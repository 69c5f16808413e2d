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
    assert await sessions.by_customer_token("") is None
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
    # Opened by the console first: the same session, its token still works.
    opened, token = await sessions.open("call-c", "agent1")
    assert (await sessions.open_for_call("call-c", "agent1", "13700137000")).account == "13700137000"
    found = await sessions.by_customer_token(token)
    assert found is not None and found.id == opened.id
    # A closed session is not reopened or handed over.
    await sessions.close("call-c", "done")
    assert (await sessions.open_for_call("call-c", "agent2")).agent == "agent1"


async def test_customer_face_answer_and_the_declined_path(db: Database) -> None:
    """The customer's on-screen answer fills the session, a decline always wins; on the declined path
    the ID card step (A3) needs the agent's attestation (A2) first, and face proofs are refused."""
    sessions = CounterSessions(db)
    opened = await sessions.open_for_call("call-f", "agent1", "13800138000", face_consent=True)
    assert opened.face_consent is True
    assert (await sessions.open_for_call("call-f", "agent1", face_consent=False)).face_consent is False
    assert (await sessions.open_for_call("call-f", "agent1", face_consent=True)).face_consent is False
    assert (await sessions.open_for_call("call-f", "agent1")).face_consent is False
    with pytest.raises(SessionError, match="declined face processing"):
        await sessions.raise_level("call-f", Level.A2, ["a" * 64], "face")
    with pytest.raises(SessionError, match="attestation") as refused:
        await sessions.raise_level("call-f", Level.A3, ["a" * 64], "idcard_attested")
    assert refused.value.code == "attest_first"
    with pytest.raises(SessionError, match="A1 first"):
        await sessions.raise_level("call-f", Level.A2, ["a" * 64], "attestation")
    await sessions.raise_level("call-f", Level.A1, [], "password")
    with pytest.raises(SessionError, match="attestation"):
        await sessions.raise_level("call-f", Level.A3, ["a" * 64], "idcard_attested")
    await sessions.raise_level("call-f", Level.A2, ["b" * 64], "attestation")
    done = await sessions.raise_level("call-f", Level.A3, ["a" * 64], "idcard_attested")
    assert (done.level, done.level_method) == (Level.A3, "idcard_attested")
