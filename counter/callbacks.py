"""Scheduled call-backs: the customer leaves a number and a preferred time; an agent starts it from
the console at that time (an outbound video invitation: a text with a link); its outcome is recorded.

Life of a call-back (kept like a work order: a status, a history of who did what, an outcome)::

    scheduled -> started (an agent sent the invitation) -> done (outcome recorded)
             \\-> cancelled (by the customer's page or a supervisor)

A call-back is *due* from :data:`DUE_AHEAD_S` before its preferred time; the console lists due ones
first, the oldest first.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from signaling.errors import CodedError
from storage import Database, Row
from storage.timeutil import iso

#: A call-back shows in the console this long before its preferred time.
DUE_AHEAD_S = 300.0
#: How far ahead a customer may book.
MAX_AHEAD_S = 7 * 86400.0


class CallbackStatus(StrEnum):
    SCHEDULED = "scheduled"
    STARTED = "started"
    DONE = "done"
    CANCELLED = "cancelled"


class CallbackResult(StrEnum):
    """How a started call-back ended."""

    RESOLVED = "resolved"
    WORK_ORDER = "work_order"
    NO_ANSWER = "no_answer"
    CUSTOMER_DECLINED = "customer_declined"


class CallbackError(CodedError):
    """A call-back operation was refused; the message says why (``code`` for the API)."""


@dataclass(frozen=True)
class Callback:
    id: int
    lane: str
    msisdn: str
    preferred_at: float
    status: CallbackStatus
    created_at: float
    agent: str | None
    started_at: float | None
    call_id: str | None
    outcome: str | None
    outcome_at: float | None
    history: tuple[dict[str, Any], ...]

    def to_json(self, masked: bool = True) -> dict[str, Any]:
        """For the consoles: the number masked but for its last four digits unless ``masked`` is false."""
        return {"id": self.id, "lane": self.lane,
                "msisdn": ("*" * 7 + self.msisdn[-4:]) if masked else self.msisdn,
                "preferred_at": self.preferred_at, "status": self.status.value, "agent": self.agent,
                "started_at": self.started_at, "call_id": self.call_id, "outcome": self.outcome,
                "outcome_at": self.outcome_at, "history": list(self.history)}


def _row(r: Row) -> Callback:
    return Callback(
        id=int(r["id"]), lane=str(r["lane"]), msisdn=str(r["msisdn"]), preferred_at=float(r["preferred_at"]),
        status=CallbackStatus(r["status"]), created_at=float(r["created_at"]), agent=r["agent"],
        started_at=None if r["started_at"] is None else float(r["started_at"]), call_id=r["call_id"],
        outcome=r["outcome"], outcome_at=None if r["outcome_at"] is None else float(r["outcome_at"]),
        history=tuple(json.loads(r["history"])),
    )


class Callbacks:
    """The ``waiting_callbacks`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def book(self, lane: str, msisdn: str, preferred_at: float, now: float | None = None) -> Callback:
        """A customer's call-back at ``preferred_at`` (unix seconds, from now to a week ahead)."""
        now = time.time() if now is None else now
        if not now - 60 <= preferred_at <= now + MAX_AHEAD_S:
            raise CallbackError("bad_time", "pick a time from now to a week ahead")
        history = json.dumps([{"status": "scheduled", "by": "customer", "at": iso()}])
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO waiting_callbacks (lane, msisdn, preferred_at, status, created_at, history)"
                " VALUES ($1, $2, $3, 'scheduled', $4, $5)", lane, msisdn, preferred_at, now, history,
            )
            new_id = await tx.fetchval("SELECT MAX(id) FROM waiting_callbacks WHERE msisdn = $1", msisdn)
        return await self.get(int(new_id))

    async def get(self, callback_id: int) -> Callback:
        row = await self.db.fetchrow("SELECT * FROM waiting_callbacks WHERE id = $1", callback_id)
        if row is None:
            raise CallbackError("no_callback", f"no call-back {callback_id}")
        return _row(row)

    async def due(self, skills: list[str], now: float | None = None) -> list[Callback]:
        """Scheduled call-backs of ``skills``' lanes due now (from DUE_AHEAD_S before their time), oldest
        first, and those started and not yet recorded."""
        now = time.time() if now is None else now
        rows = await self.db.fetch(
            "SELECT * FROM waiting_callbacks WHERE (status = 'scheduled' AND preferred_at <= $1)"
            " OR status = 'started' ORDER BY preferred_at, id", now + DUE_AHEAD_S,
        )
        return [_row(r) for r in rows if r["lane"] in skills]

    async def _change(self, callback_id: int, sets: str, args: tuple[Any, ...], was: CallbackStatus,
                      entry: dict[str, Any]) -> Callback:
        """Move ``callback_id`` from ``was`` (one conditional UPDATE: two agents never both win)."""
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("SELECT history, status FROM waiting_callbacks WHERE id = $1", callback_id)
            if row is None:
                raise CallbackError("no_callback", f"no call-back {callback_id}")
            if row["status"] != was.value:
                raise CallbackError("wrong_status", f"call-back {callback_id} is {row['status']}, not {was.value}")
            history = json.dumps([*json.loads(row["history"]), {**entry, "at": iso()}])
            n = len(args)
            changed = await tx.execute(
                f"UPDATE waiting_callbacks SET {sets}, history = ${n + 2} WHERE id = $1 AND status = ${n + 3}",
                callback_id, *args, history, was.value,
            )
            if changed != 1:
                raise CallbackError("wrong_status", f"call-back {callback_id} changed meanwhile")
        return await self.get(callback_id)

    async def start(self, callback_id: int, agent: str, call_id: str, now: float | None = None) -> Callback:
        """``agent`` starts it: the invitation for ``call_id`` goes out (the caller writes the text)."""
        now = time.time() if now is None else now
        return await self._change(callback_id, "status = 'started', agent = $2, started_at = $3, call_id = $4",
                                  (agent, now, call_id), CallbackStatus.SCHEDULED,
                                  {"status": "started", "by": agent, "call_id": call_id})

    async def record(self, callback_id: int, agent: str, outcome: CallbackResult, now: float | None = None,
                     ) -> Callback:
        """The outcome of a started call-back, by the agent who started it."""
        current = await self.get(callback_id)
        if current.agent != agent:
            raise CallbackError("not_yours", "only the agent who started this call-back records its outcome")
        now = time.time() if now is None else now
        return await self._change(callback_id, "status = 'done', outcome = $2, outcome_at = $3",
                                  (outcome.value, now), CallbackStatus.STARTED,
                                  {"status": "done", "by": agent, "outcome": outcome.value})

    async def by_call(self, call_id: str) -> Callback | None:
        row = await self.db.fetchrow("SELECT * FROM waiting_callbacks WHERE call_id = $1", call_id)
        return None if row is None else _row(row)
