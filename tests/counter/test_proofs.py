"""Session proofs and liveness challenges in the database, on both back-ends: what one node records,
another reads; a challenge is evaluated once, and only in its own session."""

from __future__ import annotations

import hashlib

from counter.proofs import ProofKind, SessionProofs
from identity.liveness import Challenge, new_challenge
from storage import Database, open_database
from tests.counter.txkit import make_kit


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_proofs_and_challenges_are_shared_through_the_database(db: Database, db_url: str) -> None:
    kit = await make_kit(db)
    other_node = await open_database(db_url)  # a second connection, as another server process has
    try:
        for sid in ("call-1", "call-2"):
            await kit.sessions.open_for_call(sid, "agent1", "13800138000", face_consent=True)
        here, there = kit.sessions.proofs, SessionProofs(other_node)
        await here.record("call-1", ProofKind.FACE_MATCH, [_sha("old face")])
        await here.record("call-1", ProofKind.FACE_MATCH, [_sha("face")], {"source": "upload"})
        latest = await there.latest("call-1", ProofKind.FACE_MATCH)
        assert latest is not None and latest.sha == _sha("face") and latest.facts == {"source": "upload"}
        assert await there.holds("call-1", _sha("face"), [ProofKind.FACE_MATCH])
        assert not await there.holds("call-1", _sha("face"), [ProofKind.CUSTOMER_STILL])
        assert not await there.holds("call-2", _sha("face"), [ProofKind.FACE_MATCH])
        assert await there.latest("call-2", ProofKind.FACE_MATCH) is None

        challenge = new_challenge(3)
        await here.save_challenge("call-1", challenge.id, challenge.state(), challenge.deadline)
        assert await there.take_challenge("call-2", challenge.id) is None  # not that session's
        state = await there.take_challenge("call-1", challenge.id)
        assert state is not None and Challenge.from_state(state) == challenge
        assert await here.take_challenge("call-1", challenge.id) is None  # once
    finally:
        await other_node.close()
        await kit.audit.close()
