"""Keep my place (virtual hold): a waiting customer leaves the page and keeps their place.

1. The customer sends ``keep_place`` with a mobile number: the call stays in its lane, away, for up
   to ``max_keep_s`` instead of the reconnect grace (:attr:`CallRecord.kept_until`).
2. When their expected wait (:mod:`signaling.waits`, counting everyone ahead) falls to
   ``notice_lead_s`` or less, one node (a conditional ``UPDATE``) writes an SMS with a one-time link
   to the outbox, tells the page if it is still open (a browser notification), and gives them
   ``return_s`` to come back; routing keeps an eligible free agent for them meanwhile.
3. The link (``/customer?hold=<code>``) is exchanged for a fresh join token for the same call
   (:meth:`Holds.come_back`): the page says hello, the call is theirs again, at the head of its lane.
4. Not back in time: the service's timer ends the call (``place_released``), and the place is marked
   released.  Every step is audited (no number in the audit: it stays in ``waiting_holds``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from signaling import protocol as p
from signaling.service import CallEvent, Connection, SignalingService
from signaling.state import CallStatus, customer_key
from signaling.waits import expected_wait_s
from storage import Database
from storage.timeutil import iso

log = logging.getLogger("signaling.hold")

ENV_PREFIX = "COUNTER_HOLD_"
MSISDN = r"^1[3-9][0-9]{9}$"
Audit = Callable[[str, str, Mapping[str, Any]], Awaitable[None]]  # (action, call id, details)


@dataclass(frozen=True)
class HoldOptions:
    """Timings in seconds (``Settings.hold``: ``[hold]`` in counter.toml, ``COUNTER_HOLD_<NAME>``)."""

    return_s: float = 300.0  # time to come back after the text
    notice_lead_s: float = 120.0  # text them when the expected wait is this short
    max_keep_s: float = 7200.0  # a kept place lasts at most this long without a text
    public_url: str = ""  # the service's address in the text (default: from the settings)

    @classmethod
    def from_values(cls, given: Mapping[str, Any]) -> HoldOptions:
        """Defaults overridden by ``given`` (names as the fields); a bad name or value names the setting."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in given.items():
            if name not in known:
                raise ValueError(f"{ENV_PREFIX}{name.upper()}: unknown; known: {', '.join(sorted(known))}")
            try:
                values[name] = str(raw) if name == "public_url" else float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected a number") from None
        return cls(**values)


class KeepPlace(BaseModel):
    """Customer -> server: keep my place while I leave; text me at ``msisdn``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1
    ref: str | None = Field(None, max_length=64)
    type: Literal["keep_place"] = "keep_place"
    msisdn: str = Field(pattern=MSISDN)


class PlaceKept(BaseModel):
    """Server -> customer: the place is kept; the page may close."""

    type: Literal["place_kept"] = "place_kept"
    ref: str | None = None
    call_id: str
    return_s: float


class PlaceNotice(BaseModel):
    """Server -> customer (if the page is still open): your turn is near; come back within ``return_s``."""

    type: Literal["place_notice"] = "place_notice"
    call_id: str
    return_s: float


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class HoldError(Exception):
    """A link that is unknown (``code`` ``no_hold``) or whose time ran out (``expired``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Holds:
    """Kept places: the ``keep_place`` message, the notices, the way back, the release."""

    def __init__(self, service: SignalingService, db: Database, options: HoldOptions, public_url: str,
                 audit: Audit | None = None) -> None:
        self.service = service
        self.db = db
        self.options = options
        self.public_url = public_url.rstrip("/")
        self.audit = audit

    def attach(self) -> None:
        """Handle ``keep_place`` on the service's connections and follow the calls' ends."""
        self.service.add_messages(["keep_place"], TypeAdapter(KeepPlace), self._keep)
        self.service.hooks.append(self._on_event)

    async def _audit(self, action: str, call_id: str, **details: Any) -> None:
        if self.audit is not None:
            await self.audit(action, call_id, details)

    async def _keep(self, conn: Connection, m: KeepPlace) -> None:
        who = conn.principal
        if who is None or who.role != "customer":
            raise p.ProtocolError("forbidden", "keep_place may be sent by a customer only", m.ref)
        now = time.time()
        async with self.service.bus.lock():
            call = await self.service.bus.get_call(who.id)
            if call is None or call.status != CallStatus.QUEUED:
                raise p.ProtocolError("not_queued", "only a waiting customer can keep a place", m.ref)
            call.kept_until = now + self.options.max_keep_s
            await self.service.bus.put_call(call)
        await self.service.store.save_call(call)
        await self.db.execute(
            "INSERT INTO waiting_holds (call_id, lane, msisdn, code_hash, status, created_at) VALUES"
            " ($1, $2, $3, $4, 'holding', $5) ON CONFLICT (call_id) DO UPDATE SET msisdn = excluded.msisdn",
            call.call_id, call.lane, m.msisdn, _hash(secrets.token_urlsafe(24)), now,
        )
        await self._audit("waiting.place_kept", call.call_id, lane=call.lane)
        await conn.send(PlaceKept(ref=m.ref, call_id=call.call_id,
                                  return_s=self.options.return_s).model_dump_json(exclude_none=True))

    async def tick(self, now: float | None = None) -> int:
        """Text the kept places whose turn is near; returns how many were texted by this node."""
        now = time.time() if now is None else now
        rows = await self.db.fetch("SELECT call_id, lane, msisdn FROM waiting_holds WHERE status = 'holding'")
        if not rows:
            return 0
        entries = {lane: [c for c, _ in await self.service.bus.lane(lane)] for lane in ("care", "general")}
        lanes = await self.service.lanes_now({lane: len(e) for lane, e in entries.items()})
        sent = 0
        for row in rows:
            call_id, lane = str(row["call_id"]), str(row["lane"])
            if call_id not in entries.get(lane, []):
                continue
            place = entries[lane].index(call_id) + 1
            if expected_wait_s(place, lanes[lane]) > self.options.notice_lead_s:
                continue
            if await self._notify(call_id, lane, str(row["msisdn"]), now):
                sent += 1
        return sent

    async def _notify(self, call_id: str, lane: str, msisdn: str, now: float) -> bool:
        code = secrets.token_urlsafe(24)
        deadline = now + self.options.return_s
        minutes = max(1, round(self.options.return_s / 60))
        link = f"{self.public_url}/customer?hold={code}"
        async with self.db.transaction() as tx:
            taken = await tx.execute(
                "UPDATE waiting_holds SET status = 'notified', code_hash = $2, notified_at = $3, deadline = $4"
                " WHERE call_id = $1 AND status = 'holding'", call_id, _hash(code), now, deadline,
            )
            if taken != 1:  # another node texted them
                return False
            await tx.execute(
                "INSERT INTO sms_outbox (msisdn, body, created_at) VALUES ($1, $2, $3)", msisdn,
                f"【远程柜台】快轮到您了，请在 {minutes} 分钟内点击链接回到视频柜台：{link}", iso(),
            )
        async with self.service.bus.lock():
            call = await self.service.bus.get_call(call_id)
            if call is not None:
                call.kept_until = deadline
                await self.service.bus.put_call(call)
        if call is not None:
            await self.service.store.save_call(call)
        await self.service.bus.send(customer_key(call_id), PlaceNotice(
            call_id=call_id, return_s=self.options.return_s).model_dump_json())
        await self._audit("waiting.place_notified", call_id, lane=lane, return_s=self.options.return_s)
        return True

    async def come_back(self, code: str, now: float | None = None) -> tuple[str, str]:
        """The link's code for a fresh join token of the kept call: ``(token, lane)``; :class:`HoldError`."""
        now = time.time() if now is None else now
        row = await self.db.fetchrow(
            "SELECT call_id, lane, status, deadline FROM waiting_holds WHERE code_hash = $1", _hash(code)
        )
        if row is None or row["status"] != "notified":
            raise HoldError("no_hold", "this link is not (or no longer) valid")
        if row["deadline"] is not None and float(row["deadline"]) < now:
            raise HoldError("expired", "the time to come back has run out; join the queue again")
        token = secrets.token_urlsafe(32)
        changed = await self.db.execute(
            "UPDATE signaling_tokens SET token_hash = $2, expires_at = $3 WHERE call_id = $1 AND ended_at IS NULL",
            row["call_id"], hashlib.sha256(token.encode()).hexdigest(), now + self.options.return_s,
        )
        if changed != 1:
            raise HoldError("no_hold", "this call has ended")
        await self._audit("waiting.place_link_used", str(row["call_id"]), lane=row["lane"])
        return token, str(row["lane"])

    async def _on_event(self, event: CallEvent) -> None:
        if event.kind not in ("accepted", "abandoned", "ended"):
            return
        status = "returned" if event.kind == "accepted" else (
            "released" if event.reason == "place_released" else "left")
        changed = await self.db.execute(
            "UPDATE waiting_holds SET status = $2, ended_at = $3 WHERE call_id = $1"
            " AND status IN ('holding', 'notified')", event.call_id, status, time.time(),
        )
        if changed:
            await self._audit(f"waiting.place_{status}", event.call_id, lane=event.lane)
