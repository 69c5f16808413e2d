"""The identity proofs a session's server side computed or stored, kept in the database.

Every node of the installation sees the same proofs: a face check answered by one node and a
liveness check answered by another add up to A2.  A proof is the sha256 of evidence the server holds
(an image kept in the evidence store, or the digest of a check it made itself, such as the service
password) with its kind and time.  :meth:`counter.sessions.CounterSessions.raise_level` accepts only
evidence recorded here for the same session (:func:`unproven`).

Liveness challenges are kept here too (serialised by the caller), so that a challenge started by one
node can be evaluated by another, once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from counter.levels import Method
from storage import Database, Executor, Row
from storage.timeutil import iso, parse_iso


class ProofKind(StrEnum):
    """What a proof is of."""

    PASSWORD = "password"  # the line's service password, checked by the server
    SMS_CODE = "sms_code"  # a one-time code sent to the line, checked by the server
    FACE_MATCH = "face_match"  # a live face (frame or accepted still) matched the real-name photo
    LIVENESS = "liveness"  # a liveness challenge passed (frames kept from the live video)
    CUSTOMER_STILL = "customer_still"  # a still from the customer's page, its face accepted
    ID_STILL = "id_still"  # face declined: an ID card still the customer sent, to compare by eye
    ATTESTATION = "attestation"  # face declined: the live frame the agent attested on
    ID_CARD = "id_card"  # an ID card read: the holder's number (and, face path, portrait matched)


#: What each identity step must cite: one proof of each group (any kind of a group will do).
REQUIRED: dict[Method, tuple[frozenset[ProofKind], ...]] = {
    Method.PASSWORD: (frozenset({ProofKind.PASSWORD}),),
    Method.SMS_CODE: (frozenset({ProofKind.SMS_CODE}),),
    Method.FACE: (frozenset({ProofKind.FACE_MATCH}), frozenset({ProofKind.LIVENESS})),
    Method.ATTESTATION: (frozenset({ProofKind.ATTESTATION, ProofKind.ID_STILL}),),
    Method.IDCARD: (frozenset({ProofKind.ID_CARD}), frozenset({ProofKind.FACE_MATCH})),
    Method.IDCARD_ATTESTED: (frozenset({ProofKind.ID_CARD}),),
}


@dataclass(frozen=True)
class Proof:
    """One proof recorded in a session."""

    kind: ProofKind
    sha: str
    at: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def timestamp(self) -> float:
        """:attr:`at` as unix seconds."""
        return parse_iso(self.at).timestamp()


def _proof(row: Row) -> Proof:
    return Proof(ProofKind(row["kind"]), row["sha"], row["at"], json.loads(row["facts"] or "{}"))


def check_digest(kind: ProofKind, session_id: str, at: str) -> str:
    """The sha256 that stands for a check with no image (password, SMS code): unique, and saying nothing."""
    text = json.dumps({"kind": kind.value, "session": session_id, "at": at, "nonce": secrets.token_hex(16)})
    return hashlib.sha256(text.encode()).hexdigest()


def unproven(method: Method, evidence: Sequence[str], proofs: Iterable[Proof]) -> str | None:
    """Why ``evidence`` cannot raise a level by ``method`` given the session's ``proofs``, or ``None``.

    Every hash cited must be a proof of the session, and the step needs its own kinds of proof.
    """
    by_sha: dict[str, set[ProofKind]] = {}
    for proof in proofs:
        by_sha.setdefault(proof.sha, set()).add(proof.kind)
    foreign = [sha for sha in evidence if sha not in by_sha]
    if foreign:
        return (f"evidence {foreign[0][:12]}… is not a proof this server computed or stored in this session: "
                "run the check in this session")
    cited = set().union(*(by_sha[sha] for sha in evidence)) if evidence else set()
    for group in REQUIRED[method]:
        if not cited & group:
            names = " or ".join(sorted(k.value for k in group))
            return f"{method.value} needs a {names} proof of this session among its evidence"
    return None


class SessionProofs:
    """The ``session_proofs`` and ``liveness_challenges`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        session_id: str,
        kind: ProofKind,
        shas: Sequence[str],
        facts: dict[str, Any] | None = None,
        ex: Executor | None = None,
    ) -> list[Proof]:
        """Record that this server computed or stored ``shas`` (one proof each) as ``kind``."""
        at = iso()
        body = json.dumps(facts or {}, ensure_ascii=False, sort_keys=True)
        for sha in shas:
            if len(sha) != 64 or not set(sha) <= set("0123456789abcdef"):
                raise ValueError(f"proof {sha!r}: a lowercase sha256 hex is needed")
            await (ex or self.db).execute(
                "INSERT INTO session_proofs (session_id, kind, sha, facts, at) VALUES ($1, $2, $3, $4, $5)",
                session_id, kind.value, sha, body, at,
            )
        return [Proof(kind, sha, at, dict(facts or {})) for sha in shas]

    async def record_check(self, session_id: str, kind: ProofKind, ex: Executor | None = None) -> Proof:
        """Record a check with no image of its own (password, SMS code) under a fresh digest."""
        at = iso()
        [proof] = await self.record(session_id, kind, [check_digest(kind, session_id, at)], ex=ex)
        return proof

    async def of_session(
        self, session_id: str, kinds: Iterable[ProofKind] = (), ex: Executor | None = None
    ) -> list[Proof]:
        """The session's proofs (of ``kinds``, or all), oldest first."""
        wanted = {k.value for k in kinds}
        rows = await (ex or self.db).fetch(
            "SELECT kind, sha, facts, at FROM session_proofs WHERE session_id = $1 ORDER BY id", session_id
        )
        return [_proof(r) for r in rows if not wanted or r["kind"] in wanted]

    async def latest(self, session_id: str, kind: ProofKind) -> Proof | None:
        """The session's newest proof of ``kind``."""
        row = await self.db.fetchrow(
            "SELECT kind, sha, facts, at FROM session_proofs WHERE session_id = $1 AND kind = $2"
            " ORDER BY id DESC LIMIT 1",
            session_id, kind.value,
        )
        return _proof(row) if row is not None else None

    async def holds(self, session_id: str, sha: str, kinds: Iterable[ProofKind]) -> bool:
        """Whether ``sha`` is a proof of one of ``kinds`` in the session."""
        wanted = {k.value for k in kinds}
        rows = await self.db.fetch(
            "SELECT kind FROM session_proofs WHERE session_id = $1 AND sha = $2", session_id, sha
        )
        return any(r["kind"] in wanted for r in rows)

    # Liveness challenges ---------------------------------------------------------------------------

    async def save_challenge(self, session_id: str, challenge_id: str, state: dict[str, Any], deadline: float) -> None:
        """Keep a liveness challenge (its serialised state) for whichever node evaluates it."""
        await self.db.execute(
            "INSERT INTO liveness_challenges (id, session_id, state, deadline, created_at) VALUES ($1, $2, $3, $4, $5)",
            challenge_id, session_id, json.dumps(state, ensure_ascii=False), float(deadline), iso(),
        )

    async def take_challenge(self, session_id: str, challenge_id: str) -> dict[str, Any] | None:
        """The challenge's state, once: ``None`` if it is unknown, another session's or used already."""
        async with self.db.transaction() as tx:
            used = await tx.execute(
                "UPDATE liveness_challenges SET used_at = $3 WHERE id = $1 AND session_id = $2 AND used_at IS NULL",
                challenge_id, session_id, iso(),
            )
            if used != 1:
                return None
            state = await tx.fetchval("SELECT state FROM liveness_challenges WHERE id = $1", challenge_id)
        result: dict[str, Any] = json.loads(state)
        return result

    async def forget_old_challenges(self, before: float | None = None) -> int:
        """Drop challenges whose deadline passed an hour before ``before`` (default now)."""
        limit = (time.time() if before is None else before) - 3600.0
        return await self.db.execute("DELETE FROM liveness_challenges WHERE deadline < $1", limit)


__all__ = ["REQUIRED", "Proof", "ProofKind", "SessionProofs", "check_digest", "unproven"]
