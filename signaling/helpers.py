"""A helper (家属, a relative) in a call: invitation links, the helper's token, presence and the holder's consent.

The holder (the customer of the call) or the agent mints an invitation (:meth:`HelperStore.invite`): a
random code, stored as its SHA-256, valid ``INVITE_TTL_S``, usable once, revoked when the call ends.  The
helper's browser redeems it (:meth:`HelperStore.redeem`) for a helper token bound to the same call id and
says ``hello`` with it: the principal ``helper:<call id>`` (one helper per call).  The helper is a third
party of the call: media in a mesh (the holder and the agent each offer a peer connection to the helper
with ``to``), a third witness leg, steps read along, ``step_result`` for the holder; never a push, never
the holder's identity, never a confirmation (the customer API refuses a helper's token).

Protocol additions (docs/protocol.md "Helper"): ``helper_intro`` (the helper's name and relation),
``helper_consent`` (the holder's answer, on video), and ``helper_state`` sent to the three parties.
Everything the call shares lives on its :class:`~signaling.state.CallRecord` (the bus: Redis across nodes).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from signaling import protocol as p
from signaling.errors import CodedError
from signaling.service import CallEvent, Connection, SignalingService
from signaling.state import CallRecord, CallStatus, Principal, customer_key
from storage import Database

#: How long an invitation link may wait to be opened.
INVITE_TTL_S = 600.0
#: How long a helper token lives without use (extended on each hello, dies with the call).
TOKEN_TTL_S = 3600.0


def helper_key(call_id: str) -> str:
    """The routing address of a call's helper."""
    return f"helper:{call_id}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class InviteError(CodedError):
    """An invitation cannot be redeemed; ``code`` is worded by the page (``invite.<code>``)."""


@dataclass(frozen=True)
class Invite:
    """A minted invitation: ``code`` goes into the link, only its hash is stored."""

    code: str
    call_id: str
    expires_at: float


@dataclass(frozen=True)
class HelperToken:
    """The helper's credential: hello on ``/ws`` as ``helper:<call_id>``."""

    token: str
    call_id: str
    expires_at: float


class HelperStore:
    """Invitations and helper tokens in the database (every node sees the same)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def invite(self, call_id: str, invited_by: str, ttl_s: float = INVITE_TTL_S) -> Invite:
        """A fresh single-use invitation to ``call_id``; earlier unused ones of the call are revoked."""
        now = time.time()
        code = secrets.token_urlsafe(24)
        await self.db.execute(
            "UPDATE helper_invites SET revoked_at = $2 WHERE call_id = $1 AND used_at IS NULL AND revoked_at IS NULL",
            call_id, now,
        )
        await self.db.execute(
            "INSERT INTO helper_invites (code_hash, call_id, invited_by, created_at, expires_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            _hash(code), call_id, invited_by, now, now + ttl_s,
        )
        return Invite(code, call_id, now + ttl_s)

    async def redeem(self, code: str) -> HelperToken:
        """Use an invitation once: the helper's token, or :class:`InviteError` saying why not."""
        now = time.time()
        if not 0 < len(code) <= 200:
            raise InviteError("invite_unknown", "this invitation link is not valid")
        # One statement: two browsers opening the same link at once never both get in.
        used = await self.db.execute(
            "UPDATE helper_invites SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL"
            " AND revoked_at IS NULL AND expires_at >= $2",
            _hash(code), now,
        )
        row = await self.db.fetchrow(
            "SELECT call_id, expires_at, used_at, revoked_at FROM helper_invites WHERE code_hash = $1", _hash(code)
        )
        if row is None:
            raise InviteError("invite_unknown", "this invitation link is not valid")
        if not used:
            if row["used_at"] is not None:
                raise InviteError("invite_used", "this invitation link has been used already")
            if row["revoked_at"] is not None:
                raise InviteError("invite_revoked", "this invitation was withdrawn or its call has ended")
            raise InviteError("invite_expired", "this invitation link has expired: ask for a new one")
        return await self.mint_token(str(row["call_id"]))

    async def mint_token(self, call_id: str) -> HelperToken:
        """A helper token bound to ``call_id`` (a redeemed invitation, or a helper who starts the call)."""
        now = time.time()
        token = secrets.token_urlsafe(32)
        await self.db.execute(
            "INSERT INTO helper_tokens (token_hash, call_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            _hash(token), call_id, now, now + TOKEN_TTL_S,
        )
        return HelperToken(token, call_id, now + TOKEN_TTL_S)

    async def check_token(self, token: str) -> str | None:
        """The call id of a live helper token (its lifetime extended), else ``None``."""
        now = time.time()
        if not 0 < len(token) <= 200:
            return None
        row = await self.db.fetchrow(
            "SELECT call_id, expires_at, ended_at FROM helper_tokens WHERE token_hash = $1", _hash(token)
        )
        if row is None or row["ended_at"] is not None or float(row["expires_at"]) < now:
            return None
        await self.db.execute(
            "UPDATE helper_tokens SET expires_at = $2 WHERE token_hash = $1", _hash(token), now + TOKEN_TTL_S
        )
        return str(row["call_id"])

    async def is_helper_token(self, token: str) -> bool:
        """Whether ``token`` is a helper's (alive or not): the customer API refuses it by name."""
        if not 0 < len(token) <= 200:
            return False
        return await self.db.fetchrow("SELECT 1 FROM helper_tokens WHERE token_hash = $1", _hash(token)) is not None

    async def end_call(self, call_id: str) -> None:
        """The call ended: its invitations are revoked and its helper tokens serve no more."""
        now = time.time()
        await self.db.execute(
            "UPDATE helper_invites SET revoked_at = $2 WHERE call_id = $1 AND revoked_at IS NULL", call_id, now
        )
        await self.db.execute(
            "UPDATE helper_tokens SET ended_at = $2 WHERE call_id = $1 AND ended_at IS NULL", call_id, now
        )

    async def purge(self) -> int:
        cutoff = time.time() - TOKEN_TTL_S
        n = await self.db.execute("DELETE FROM helper_invites WHERE expires_at < $1", cutoff)
        return n + await self.db.execute("DELETE FROM helper_tokens WHERE expires_at < $1", cutoff)


# messages --------------------------------------------------------------------------------------


class Relation(enum.StrEnum):
    """What the helper is to the holder (worded by the pages: ``relation.<value>``)."""

    CHILD = "child"
    SPOUSE = "spouse"
    GRANDCHILD = "grandchild"
    SIBLING = "sibling"
    RELATIVE = "relative"
    FRIEND = "friend"
    OTHER = "other"


class Consent(enum.StrEnum):
    """The holder's answer to the helper's presence."""

    PENDING = "pending"
    AGREED = "agreed"
    REFUSED = "refused"


class HelperIntro(p.Message):
    """The helper says who they are (name and relation); the holder is asked on screen."""

    type: Literal["helper_intro"] = "helper_intro"
    call_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=40)
    relation: Relation


class HelperConsent(p.Message):
    """The holder's answer: the helper may stay (``accepted``) or not."""

    type: Literal["helper_consent"] = "helper_consent"
    call_id: str = Field(min_length=1, max_length=64)
    accepted: bool


class HelperSuggest(p.Message):
    """The agent suggests a helper: the holder's screen asks them; a link is minted only if they agree."""

    type: Literal["helper_suggest"] = "helper_suggest"
    call_id: str = Field(min_length=1, max_length=64)


class HelperEvent(enum.StrEnum):
    """Why ``helper_state`` is sent."""

    JOINED = "joined"  # the helper's socket is up (again): offer them a new peer connection
    LEFT = "left"  # the helper's socket is gone
    INTRO = "intro"  # the helper said who they are: the holder is asked
    CONSENT = "consent"  # the holder answered
    STATE = "state"  # as it is (after a hello of anyone on the call)
    SUGGESTED = "suggested"  # to the holder: the agent suggests inviting a helper (the holder decides)


class HelperState(p.Message):
    """To the holder, the agent and the helper: who the helper is and whether the holder agreed."""

    type: Literal["helper_state"] = "helper_state"
    call_id: str
    event: HelperEvent
    helper: str  # the helper's routing key (``to`` of offers)
    present: bool
    consent: Consent | None = None  # None: the helper has not said who they are yet
    name: str | None = None
    relation: Relation | None = None
    holder_present: bool = False  # the holder's socket is up (a helper may start first)
    in_call: bool = False  # an agent has the call


class Hold(enum.StrEnum):
    """Why the agent may not go on with a call a helper is in (worded by the console: ``hold.<value>``)."""

    CONSENT_PENDING = "helper_consent_pending"  # the holder has not agreed to the helper yet
    HELPER_REFUSED = "helper_refused"  # the holder said no and the helper is still connected
    HOLDER_ABSENT = "holder_absent"  # the helper is there, the holder is not (yet, or dropped)


_HOLD_REASONS = {
    Hold.CONSENT_PENDING: "a helper is in this call and the holder has not agreed to them yet: "
                          "wait for the holder's answer on their screen",
    Hold.HELPER_REFUSED: "the holder refused the helper, who is still connected: wait until the helper has left",
    Hold.HOLDER_ABSENT: "a helper is in this call but the account holder is not: wait until the holder "
                        "joins from their own device (or shares the helper's camera)",
}


def holder_hold(call: CallRecord) -> tuple[Hold, str] | None:
    """Why identity checks and changes must wait on ``call`` (the agent proceeds only once the holder is
    present and has agreed to the helper), or ``None``; nothing waits while no helper is connected."""
    if not call.helper_present:
        return None
    if call.disconnected_at is not None:
        hold = Hold.HOLDER_ABSENT
    elif call.helper_consent == Consent.REFUSED.value:
        hold = Hold.HELPER_REFUSED
    elif call.helper_consent != Consent.AGREED.value:
        hold = Hold.CONSENT_PENDING
    else:
        return None
    return hold, _HOLD_REASONS[hold]


HelperMessage = Annotated[HelperIntro | HelperConsent | HelperSuggest, Field(discriminator="type")]
_ADAPTER = TypeAdapter[HelperMessage](HelperMessage)
TYPES = ("helper_intro", "helper_consent", "helper_suggest")


@dataclass(frozen=True)
class HelperAudit:
    """Something to audit: ``name`` is personal data (kept out of immutable bodies)."""

    action: str  # helper.joined | helper.intro | helper.consent | helper.suggested
    call_id: str
    actor_role: str
    actor_id: str
    outcome: str = "ok"
    relation: str | None = None
    name: str | None = None
    claimed_account: str | None = None


AuditHook = Callable[[HelperAudit], Awaitable[None]]


class Helpers:
    """Wires the helper into a :class:`SignalingService` (messages, hello, leave and call-end hooks)."""

    def __init__(self, service: SignalingService, store: HelperStore) -> None:
        self.service = service
        self.store = store
        self.audit_hooks: list[AuditHook] = []

    def attach(self) -> None:
        s = self.service
        s.token_checks.append(self._principal)
        s.hello_hooks.append(self._hello)
        s.leave_hooks.append(self._left)
        s.orphan_hooks.append(self._orphaned)
        s.hooks.append(self._call_event)
        s.add_messages(TYPES, _ADAPTER, self._handle)

    async def _audit(self, entry: HelperAudit) -> None:
        for hook in self.audit_hooks:
            await hook(entry)

    async def _principal(self, token: str) -> Principal | None:
        call_id = await self.store.check_token(token)
        return Principal("helper", call_id, "helper") if call_id else None

    def _state(self, call: CallRecord, event: HelperEvent) -> HelperState:
        return HelperState(
            call_id=call.call_id, event=event, helper=helper_key(call.call_id), present=call.helper_present,
            consent=Consent(call.helper_consent) if call.helper_consent else None, name=call.helper_name,
            relation=Relation(call.helper_relation) if call.helper_relation else None,
            holder_present=call.disconnected_at is None, in_call=call.status == CallStatus.IN_CALL,
        )

    async def _tell(self, call: CallRecord, event: HelperEvent, keys: list[str] | None = None) -> None:
        text = p.dump(self._state(call, event))
        if keys is None:
            keys = [customer_key(call.call_id), helper_key(call.call_id)]
            if call.status == CallStatus.IN_CALL and call.agent_id:
                keys.append(f"{call.agent_role or 'agent'}:{call.agent_id}")
        for key in keys:
            await self.service.bus.send(key, text)

    async def _hello(self, conn: Connection, who: Principal) -> None:
        bus = self.service.bus
        if who.role == "helper":
            call = await self._present(who.id)
            if call is None:
                return
            if call.status == CallStatus.IN_CALL and call.agent_id:
                agent = f"{call.agent_role or 'agent'}:{call.agent_id}"
                await bus.send(who.key, p.dump(p.CallStarted(call_id=call.call_id, lane=call.lane, peer=agent,
                                                             peer_name=call.agent_name or call.agent_id)))
            await self._tell(call, HelperEvent.JOINED)
            return
        call_id = who.id if who.role == "customer" else None
        if who.role in ("agent", "supervisor"):
            record = await bus.get_agent(who.id)
            call_id = record.call_id if record is not None else None
        call = await bus.read_call(call_id) if call_id else None
        if call is not None and call.helper_present:
            # Back after a drop: a new peer connection to the helper (no ICE restart).
            await self._tell(call, HelperEvent.JOINED, [who.key])

    async def _left(self, who: Principal) -> None:
        if who.role != "helper":
            return
        async with self.service.bus.lock():
            await self._orphaned(who.key, time.time())

    async def _orphaned(self, key: str, now: float) -> None:
        """``key``'s socket is gone (closed, or its node died without a word): not present.  Under lock."""
        if not key.startswith("helper:"):
            return
        call = await self.service.bus.get_call(key.removeprefix("helper:"))
        if call is None or not call.helper_present:
            return
        call.helper_present = False
        await self.service.bus.put_call(call)
        await self._tell(call, HelperEvent.LEFT)

    async def _holder_came(self, call_id: str) -> None:
        """The holder queued a call a helper started: the helper, waiting connected, is on it from now."""
        bus = self.service.bus
        if helper_key(call_id) not in await bus.connected_keys():
            return
        call = await self._present(call_id)
        if call is not None:
            await self._tell(call, HelperEvent.JOINED)

    async def _present(self, call_id: str) -> CallRecord | None:
        """The helper of ``call_id`` is connected: present on the call from now (audited the first time)."""
        bus = self.service.bus
        async with bus.lock():
            call = await bus.get_call(call_id)
            if call is None:
                return None
            first = not call.helper_seen
            call.helper_present = call.helper_seen = True
            await bus.put_call(call)
        await self.service.store.save_call(call)
        if first:
            await self._audit(HelperAudit("helper.joined", call_id, "helper", f"helper:session:{call_id}",
                                          claimed_account=call.claimed_account or call.claimed_phone))
        return call

    async def _call_event(self, event: CallEvent) -> None:
        if event.kind in ("ended", "abandoned"):
            await self.store.end_call(event.call_id)
            await self.service.bus.send(helper_key(event.call_id),
                                        p.dump(p.CallEnded(call_id=event.call_id, reason=event.reason or "hangup")))
        elif event.kind == "joined":
            await self._holder_came(event.call_id)
        elif event.kind == "accepted":
            call = await self.service.bus.read_call(event.call_id)
            if call is not None and call.helper_present and call.agent_id:
                agent = f"{call.agent_role or 'agent'}:{call.agent_id}"
                await self.service.bus.send(helper_key(call.call_id), p.dump(p.CallStarted(
                    call_id=call.call_id, lane=call.lane, peer=agent, peer_name=call.agent_name or call.agent_id)))
                await self._tell(call, HelperEvent.JOINED, [agent, customer_key(call.call_id)])

    async def _handle(self, conn: Connection, m: HelperMessage) -> None:
        who = conn.principal
        assert who is not None
        bus = self.service.bus
        if isinstance(m, HelperIntro):
            if who.role != "helper" or who.id != m.call_id:
                raise p.ProtocolError("forbidden", "helper_intro is the helper's own words", m.ref)
            async with bus.lock():
                call = await bus.get_call(m.call_id)
                if call is None:
                    raise p.ProtocolError("not_in_call", "this call has ended", m.ref)
                call.helper_name = m.name
                call.helper_relation = m.relation.value
                call.helper_consent = Consent.PENDING.value
                await bus.put_call(call)
            await self._audit(HelperAudit("helper.intro", call.call_id, "helper", f"helper:session:{call.call_id}",
                                          relation=m.relation.value, name=m.name,
                                          claimed_account=call.claimed_account or call.claimed_phone))
            await self._tell(call, HelperEvent.INTRO)
            return
        if isinstance(m, HelperSuggest):
            call = await bus.read_call(m.call_id)
            if call is None or call.status != CallStatus.IN_CALL or call.agent_id is None:
                raise p.ProtocolError("not_in_call", f"call {m.call_id} is not connected", m.ref)
            if who.key != f"{call.agent_role or 'agent'}:{call.agent_id}":
                raise p.ProtocolError("forbidden", "helper_suggest is sent by the call's agent", m.ref)
            await self._audit(HelperAudit("helper.suggested", call.call_id, who.role, who.audit_id,
                                          claimed_account=call.claimed_account or call.claimed_phone))
            await self._tell(call, HelperEvent.SUGGESTED, [customer_key(call.call_id)])
            return
        if who.role != "customer" or who.id != m.call_id:
            raise p.ProtocolError("forbidden", "helper_consent is the holder's own answer", m.ref)
        async with bus.lock():
            call = await bus.get_call(m.call_id)
            if call is None or call.helper_consent is None:
                raise p.ProtocolError("no_helper", "no helper has asked to join this call", m.ref)
            call.helper_consent = (Consent.AGREED if m.accepted else Consent.REFUSED).value
            await bus.put_call(call)
        await self.service.store.save_call(call)
        await self._audit(HelperAudit("helper.consent", call.call_id, "customer", f"session:{call.call_id}",
                                      outcome="ok" if m.accepted else "refused", relation=call.helper_relation,
                                      name=call.helper_name,
                                      claimed_account=call.claimed_account or call.claimed_phone))
        await self._tell(call, HelperEvent.CONSENT)
        if not m.accepted:  # the holder said no: the helper leaves the call and cannot come back
            await self.store.end_call(call.call_id)
            await bus.send(helper_key(call.call_id), p.dump(p.CallEnded(call_id=call.call_id, reason="helper_refused")))
