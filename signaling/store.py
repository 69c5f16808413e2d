"""What signaling keeps in the database: join tokens, the queue (so a restart loses no one), call legs."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from signaling.state import CallRecord
from storage import Database
from storage.timeutil import iso


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenCall:
    """The call a join token is bound to, and when that call ended (``None``: not yet)."""

    call_id: str
    ended_at: float | None


@dataclass(frozen=True)
class JoinToken:
    """An anonymous customer's credential: the bearer may join (and rejoin) exactly one call."""

    token: str
    call_id: str
    expires_at: float


def new_call_id() -> str:
    """A fresh random call id."""
    return "c" + secrets.token_hex(10)


class SignalingStore:
    """Join tokens (stored as SHA-256), queue rows written through, and legs for the KPIs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def mint_token(self, ttl_s: float, care: bool = False, call_id: str | None = None) -> JoinToken:
        """A fresh random token bound to a fresh call id (or to ``call_id``: a holder a helper invited)."""
        token = secrets.token_urlsafe(32)
        call_id = call_id or new_call_id()
        expires = time.time() + ttl_s
        await self.db.execute(
            "INSERT INTO signaling_tokens (token_hash, call_id, created_at, expires_at, care)"
            " VALUES ($1, $2, $3, $4, $5)",
            _hash(token), call_id, iso(), expires, int(care),
        )
        return JoinToken(token, call_id, expires)

    async def check_token(self, token: str, extend_s: float) -> str | None:
        """The call id of a valid token (its lifetime extended by ``extend_s``), or ``None``.

        A token dies with its call (:meth:`end_token`): it never opens another call under that id.
        """
        now = time.time()
        row = await self.db.fetchrow(
            "SELECT call_id, expires_at, ended_at FROM signaling_tokens WHERE token_hash = $1", _hash(token)
        )
        if row is None or float(row["expires_at"]) < now or row["ended_at"] is not None:
            return None
        await self.db.execute(
            "UPDATE signaling_tokens SET expires_at = $1 WHERE token_hash = $2 AND expires_at < $1",
            now + extend_s, _hash(token),
        )
        return str(row["call_id"])

    async def token_care(self, call_id: str) -> bool:
        """Whether the server put this call's token in the care lane when it minted it (by age)."""
        row = await self.db.fetchrow("SELECT care FROM signaling_tokens WHERE call_id = $1", call_id)
        return row is not None and bool(row["care"])

    async def token_call(self, token: str) -> TokenCall | None:
        """What a token is bound to, without extending it: ``None`` if unknown or expired."""
        row = await self.db.fetchrow(
            "SELECT call_id, expires_at, ended_at FROM signaling_tokens WHERE token_hash = $1", _hash(token)
        )
        if row is None or (row["ended_at"] is None and float(row["expires_at"]) < time.time()):
            return None
        ended = row["ended_at"]
        return TokenCall(str(row["call_id"]), None if ended is None else float(ended))

    async def end_token(self, call_id: str) -> None:
        """The call of this token ended: the token serves no new call (once only)."""
        await self.db.execute(
            "UPDATE signaling_tokens SET ended_at = $2 WHERE call_id = $1 AND ended_at IS NULL", call_id, time.time()
        )

    async def purge_tokens(self) -> int:
        return await self.db.execute("DELETE FROM signaling_tokens WHERE expires_at < $1", time.time())

    async def save_call(self, call: CallRecord) -> None:
        """Write a queued or connected call through, so a restart can put it back in its lane."""
        # One statement: two writers of the same call at once (a restore and a resume) never both insert.
        await self.db.execute(
            "INSERT INTO signaling_queue (call_id, lane, score, data, updated_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (call_id) DO UPDATE SET lane = excluded.lane, score = excluded.score,"
            " data = excluded.data, updated_at = excluded.updated_at",
            call.call_id, call.lane, call.score, call.model_dump_json(), iso(),
        )

    async def forget_call(self, call_id: str) -> None:
        await self.db.execute("DELETE FROM signaling_queue WHERE call_id = $1", call_id)

    async def saved_calls(self) -> list[CallRecord]:
        rows = await self.db.fetch("SELECT data FROM signaling_queue ORDER BY score")
        return [CallRecord.model_validate_json(r["data"]) for r in rows]

    # legs: one per wait-then-talk with one agent ------------------------------------------------

    async def open_leg(self, call: CallRecord) -> int:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO signaling_legs (call_id, lane, queued_at) VALUES ($1, $2, $3)",
                call.call_id, call.lane, call.queued_at,
            )
            leg = await tx.fetchval(
                "SELECT MAX(id) FROM signaling_legs WHERE call_id = $1", call.call_id
            )
        return int(leg)

    async def answer_leg(self, leg: int, agent: str, at: float) -> None:
        await self.db.execute(
            "UPDATE signaling_legs SET answered_at = $2, agent = $3 WHERE id = $1", leg, at, agent
        )

    async def close_leg(self, leg: int, outcome: str, at: float) -> None:
        await self.db.execute(
            "UPDATE signaling_legs SET ended_at = $2, outcome = $3 WHERE id = $1 AND ended_at IS NULL",
            leg, at, outcome,
        )
