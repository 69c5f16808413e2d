"""Counter sessions opened for signaling calls, on both back-ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from counter.proofs import ProofKind
from counter.sessions import CounterSessions, Level, SessionError
from storage import Database
from tests.counter.txkit import Kit, make_kit


@pytest.fixture
async def kit(db: Database) -> AsyncIterator[Kit]:
    kit = await make_kit(db)
    yield kit
    await kit.audit.close()


async def test_open_for_call_opens_hands_over_and_claims(kit: Kit) -> None:
    sessions = kit.sessions
    first = await sessions.open_for_call("call-a", "agent1", "+86 139-0013-9000")
    assert (first.id, first.agent, first.account, first.level) == ("call-a", "agent1", "13900139000", Level.A0)
    # The hook and the console racing for the same call end with one session.
    both = await asyncio.gather(sessions.open_for_call("call-b", "agent1"), sessions.open_for_call("call-b", "agent1"))
    assert {s.id for s in both} == {"call-b"} and both[0].account is None
    assert (await sessions.open_for_call("call-b", "agent1", "not a number")).account is None
    # Transferred: the new agent gets the session, the claim and level stay, a note says so.
    await sessions.set_face_consent("call-a", True)
    await sessions.raise_level("call-a", Level.A1, await kit.prove("call-a", ProofKind.PASSWORD), "password")
    moved = await sessions.open_for_call("call-a", "agent2", "13800138000")
    assert moved.agent == "agent2" and moved.account == "13900139000" and moved.level == Level.A1
    assert moved.notes[-1]["author"] == "system" and "agent1 to agent2" in moved.notes[-1]["text"]
    # Opened first: the same session.
    opened = await sessions.open("call-c", "agent1")
    assert (await sessions.open_for_call("call-c", "agent1", "13700137000")).id == opened.id
    # A closed session is not reopened or handed over.
    await sessions.close("call-c", "done")
    assert (await sessions.open_for_call("call-c", "agent2")).agent == "agent1"


async def test_a_session_ends_with_its_call(kit: Kit) -> None:
    """After the call ends the session proves, claims and changes nothing; the wrap-up still closes it."""
    sessions = kit.sessions
    await sessions.open_for_call("call-e", "agent1", "13800138000", face_consent=True)
    await sessions.raise_level("call-e", Level.A1, await kit.prove("call-e", ProofKind.PASSWORD), "password")
    ended = await sessions.end_call("call-e")
    assert ended is not None and ended.open and not ended.live and ended.call_ended_at is not None
    assert ended.effective_level(for_change=False)[0] == Level.A0
    with pytest.raises(SessionError, match="has ended"):
        await sessions.raise_level("call-e", Level.A1, await kit.prove("call-e", ProofKind.PASSWORD), "password")
    with pytest.raises(SessionError, match="has ended"):
        await sessions.claim_account("call-e", "13900139000")
    # Not handed to another agent either, nor reopened.
    assert (await sessions.open_for_call("call-e", "agent2")).agent == "agent1"
    assert await sessions.end_call("never-accepted") is None
    closed = await sessions.close("call-e", "resolved")
    assert closed.closed_at is not None


async def test_customer_face_answer_and_the_declined_path(kit: Kit) -> None:
    """The customer's on-screen answer fills the session, a decline always wins; on the declined path
    the ID card step (A3) needs the agent's attestation (A2) first, and face proofs are refused."""
    sessions: CounterSessions = kit.sessions
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
    await sessions.raise_level("call-f", Level.A1, await kit.prove("call-f", ProofKind.PASSWORD), "password")
    with pytest.raises(SessionError, match="attestation"):
        await sessions.raise_level("call-f", Level.A3, ["a" * 64], "idcard_attested")
    await sessions.raise_level("call-f", Level.A2, await kit.prove("call-f", ProofKind.ID_STILL), "attestation")
    done = await sessions.raise_level("call-f", Level.A3, await kit.prove("call-f", ProofKind.ID_CARD),
                                      "idcard_attested")
    assert (done.level, done.level_method) == (Level.A3, "idcard_attested")


async def test_a_level_rests_only_on_proofs_of_the_same_session(kit: Kit) -> None:
    """Evidence must be proofs this server recorded in this session, of the kinds the step needs."""
    sessions = kit.sessions
    await sessions.open_for_call("call-p", "agent1", "13800138000", face_consent=True)
    await sessions.open_for_call("call-q", "agent1", "13800138000", face_consent=True)
    [face_q, alive_q] = await kit.prove("call-q", ProofKind.FACE_MATCH, ProofKind.LIVENESS)
    for evidence in (["e" * 64], [face_q, alive_q]):  # made up, or another session's
        with pytest.raises(SessionError, match="not a proof") as refused:
            await sessions.raise_level("call-p", Level.A2, evidence, "face")
        assert refused.value.code == "unproven"
    [face_p] = await kit.prove("call-p", ProofKind.FACE_MATCH)
    with pytest.raises(SessionError, match="needs a liveness proof"):
        await sessions.raise_level("call-p", Level.A2, [face_p], "face")  # a face match alone is not A2
    with pytest.raises(SessionError, match="needs a password proof"):
        await sessions.raise_level("call-p", Level.A1, [], "password")
    [alive_p] = await kit.prove("call-p", ProofKind.LIVENESS)
    session = await sessions.raise_level("call-p", Level.A2, [face_p, alive_p], "face", recorded_by="agent1")
    assert session.level == Level.A2 and (await sessions.get("call-q")).level == Level.A0


async def test_every_level_change_is_one_audit_entry_naming_its_evidence(kit: Kit) -> None:
    """A1 included; a new claim that drops the level too; another person's proof keeps personal data out."""
    sessions = kit.sessions
    await sessions.open_for_call("call-l", "agent1", "13800138000", face_consent=True)
    [password] = await kit.prove("call-l", ProofKind.PASSWORD)
    await sessions.raise_level("call-l", Level.A1, [password], "password", recorded_by="agent1")
    other = "new_holder:110101199001014567"
    card = await kit.prove("call-l", ProofKind.ID_CARD, ProofKind.FACE_MATCH)
    await sessions.raise_level("call-l", Level.A3, card, "idcard", recorded_by="agent1", subject=other)
    await sessions.claim_account("call-l", "13900139000")
    entries = [e["entry"] for e in await kit.audit.search(action="session.level", session_id="call-l")]
    assert [(e["details"]["level_before"], e["details"]["level"], e["evidence"]) for e in entries] == [
        ("A0", "A1", [password]), ("A1", "A1", card), ("A1", "A0", []),
    ]
    assert entries[0]["actor_id"] == "agent1" and entries[0]["details"]["method"] == "password"
    assert entries[1]["details"]["subject"] == "new_holder" and "110101199001014567" not in str(entries)
    assert await kit.audit_count("call-l", "%") == 3
