"""The signaling service: connections, the two-lane queue, routing to agents, and in-call relay.

Transport-agnostic: the web layer accepts the WebSocket, resolves who is on it, and feeds text frames
to :meth:`SignalingService.handle`; the service answers through the connection's ``send``.
Routing state lives on the :class:`~signaling.bus.Bus` (shared between nodes); every decision that
changes it is taken under ``bus.lock()``.  Relay messages (SDP, ICE, chat) take no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from signaling import protocol as p
from signaling.bus import LANES, Bus
from signaling.ice import ice_servers
from signaling.options import SignalingOptions
from signaling.protocol import AgentState
from signaling.state import AgentRecord, CallRecord, Principal, customer_key
from signaling.store import JoinToken, SignalingStore
from signaling.waits import HandleTimes, LaneNow, expected_wait_s, lanes_now
from storage import DatabaseError

log = logging.getLogger("signaling")

CARE_AGE = 65
STAFF_ROLES = ("agent", "supervisor")
_RELAYED = (p.Sdp, p.Ice, p.Chat, p.PushStep, p.StepResult)


@dataclass(frozen=True)
class CallEvent:
    """A call's life event, for hooks (audit, the counter session opened per call id)."""

    kind: str  # joined | accepted | ended | requeued | transferred | abandoned | monitored
    call_id: str
    lane: str
    actor_role: str
    actor_id: str
    agent: str | None = None
    reason: str | None = None
    claimed_phone: str | None = None
    claimed_account: str | None = None
    face_consent: bool | None = None  # the customer's own answer to the face-processing question
    face_consent_at: float | None = None  # unix seconds: when the customer gave it (their join)


@dataclass(frozen=True)
class ChatLine:
    """A chat line as relayed in a call, for hooks (the audit timeline); ``text`` is personal data."""

    call_id: str
    sender_role: str  # customer | agent | supervisor
    sender_id: str  # the sender's audit id: a username, or "session:<call id>" for the customer
    text: str
    claimed_account: str | None = None  # what the customer claimed at join (account, else phone)


CallHook = Callable[[CallEvent], Awaitable[None]]
ChatHook = Callable[[ChatLine], Awaitable[None]]
AgeLookup = Callable[[str | None, str | None], Awaitable[int | None]]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class IceConfig:
    stun_urls: list[str] = field(default_factory=list)
    turn_urls: list[str] = field(default_factory=list)
    turn_secret: str = ""
    turn_ttl_s: int = 600


class Connection:
    """One client connection: who it is, its rate limit, and how to send to it."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[], Awaitable[object]],
        staff: Principal | None,
        options: SignalingOptions,
    ) -> None:
        self._send = send
        self._close = close
        self.staff = staff
        self.principal: Principal | None = None
        self.bucket = p.TokenBucket(options.rate_per_s, options.rate_burst)
        self.monitoring: set[str] = set()
        self.ice_sent_at = 0.0
        self.closed = False

    async def send(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self._send(text)
        except (ConnectionError, RuntimeError):
            self.closed = True

    async def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self._close()


class SignalingService:
    """Queue, routing and relay for one node; share state with other nodes through ``bus``."""

    def __init__(
        self,
        store: SignalingStore,
        bus: Bus,
        options: SignalingOptions | None = None,
        ice: IceConfig | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.options = options or SignalingOptions()
        self.ice = ice or IceConfig()
        self.hooks: list[CallHook] = []
        #: Extra credentials for ``hello`` (a helper's token): a principal, or ``None`` if not theirs.
        self.token_checks: list[Callable[[str], Awaitable[Principal | None]]] = []
        #: Called after each ``hello`` is welcomed, and when a non-staff, non-customer principal leaves.
        self.hello_hooks: list[Callable[[Connection, Principal], Awaitable[None]]] = []
        self.leave_hooks: list[Callable[[Principal], Awaitable[None]]] = []
        #: Under the lock: a key (not a customer's) whose node died without a word, and the time.
        self.orphan_hooks: list[Callable[[str, float], Awaitable[None]]] = []
        #: Called after each chat line is forwarded (a failing hook is logged, the chat goes on).
        self.chat_hooks: list[ChatHook] = []
        #: Set by the counter side to route customers aged 65+ (from the account) to the care lane.
        self.age_lookup: AgeLookup | None = None
        self.conns: dict[str, Connection] = {}
        self._tick_task: asyncio.Task[None] | None = None
        self._last_status = 0.0
        self._last_heartbeat = 0.0
        self._handle_times: list[float] = []
        self.stats = {"in": 0, "relayed": 0, "errors": 0}
        #: Why the shared state (bus) or database is unreachable, or ``None`` when all is well.
        self.degraded: str | None = None
        self._lost_in_outage: set[str] = set()
        self._unconnected_seen: set[str] = set()  # calls whose customer was connected nowhere, last pass
        self._outage_errors: tuple[type[BaseException], ...] = (*bus.unavailable, DatabaseError)
        self._extra: dict[str, tuple[TypeAdapter[Any], Callable[[Connection, Any], Awaitable[None]]]] = {}
        #: Set while the node stops: connections that close then change no call and no presence.
        self.closing = False
        #: The lanes' recent handle times, for the wait estimates.
        self.handle_times = HandleTimes(store.db, self.options.default_handle_s)

    @property
    def node_id(self) -> str:
        return self.bus.node_id

    # life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the bus, put persisted calls back in their lanes, and start the timer."""
        await self.bus.start(self._deliver)
        await self.bus.heartbeat_node(self.options.presence_ttl_s)
        await self._restore()
        self._tick_task = asyncio.create_task(self._ticker(), name="signaling-tick")

    async def close(self) -> None:
        """Stop the timer, tell connected people, close connections and the bus."""
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        # A graceful stop changes no call: connected calls stay connected (persisted), and the pages
        # reconnect by themselves to this node's successor (see :meth:`_restore`).
        self.closing = True
        notice = p.dump(p.Notice(code=p.NoticeCode.SERVER_RESTART,
                                 text="The service restarts; stay here, reconnecting by itself..."))
        for conn in list(self.conns.values()):
            await conn.send(notice)
            await conn.close()
        self.conns.clear()
        await self.bus.close()

    async def _restore(self) -> None:
        """Put persisted calls back: queued ones in their lanes, connected ones connected to their
        agent, whose presence waits ``reconnect_grace_s`` for them (their console reconnects by
        itself).  Both parties count as away until they say hello again."""
        saved = await self.store.saved_calls()
        now = time.time()
        connected = 0
        async with self.bus.lock():
            for call in saved:
                if await self.bus.get_call(call.call_id) is not None:
                    continue
                call.disconnected_at = now
                call.monitors = []
                call.recording = False  # the witness starts again with the parties' new legs
                if call.status == "in_call" and call.agent_id:
                    call.unrecorded_since = now
                    await self.bus.put_call(call)
                    if await self.bus.get_agent(call.agent_id) is None:
                        await self.bus.put_agent(AgentRecord(
                            id=call.agent_id, role=call.agent_role or "agent", name=call.agent_name or "",
                            state=AgentState.IN_CALL, state_since=now, call_id=call.call_id, node=self.node_id,
                            restored_until=now + self.options.reconnect_grace_s,
                        ), self.options.reconnect_grace_s + self.options.presence_ttl_s)
                    connected += 1
                    continue
                call.status = "queued"
                call.offered_to = None
                call.agent_id = call.agent_name = None
                await self.bus.enqueue(call)
        if saved:
            log.info("signaling: %d persisted calls restored (%d connected, waiting for both parties)",
                     len(saved), connected)

    async def _deliver(self, key: str, text: str) -> None:
        conn = self.conns.get(key)
        if conn is not None:
            await conn.send(text)

    async def _to(self, key: str, message: BaseModel) -> None:
        await self.bus.send(key, p.dump(message))

    async def notify_customer(self, call_id: str, code: p.NoticeCode, text: str) -> None:
        """Tell the customer of ``call_id`` something by code (on whichever node they are connected)."""
        await self._to(customer_key(call_id), p.Notice(code=code, text=text, call_id=call_id))

    async def _emit(self, event: CallEvent) -> None:
        for hook in self.hooks:
            try:
                await hook(event)
            except Exception:
                log.exception("signaling: call hook failed for %s %s", event.kind, event.call_id)

    async def _chat(self, line: ChatLine) -> None:
        for hook in self.chat_hooks:
            try:
                await hook(line)
            except Exception:
                log.exception("signaling: chat hook failed for %s", line.call_id)

    def _event(self, kind: str, call: CallRecord, actor: Principal | None, **extra: str | None) -> CallEvent:
        return CallEvent(
            kind=kind,
            call_id=call.call_id,
            lane=call.lane,
            actor_role=actor.role if actor else "system",
            actor_id=actor.audit_id if actor else "system",
            agent=extra.pop("agent", call.agent_id),
            reason=extra.pop("reason", None),
            claimed_phone=call.claimed_phone,
            claimed_account=call.claimed_account,
            face_consent=call.face_consent,
            face_consent_at=call.face_consent_at,
        )

    # customers' tokens ----------------------------------------------------------------------

    async def mint_join(self, care: bool = False) -> JoinToken:
        """A join token for an anonymous customer (``POST /api/customer/join``)."""
        return await self.store.mint_token(self.options.join_token_ttl_s, care)

    def ice_for(self, principal: Principal) -> list[p.IceServer]:
        return ice_servers(
            self.ice.stun_urls, self.ice.turn_urls, self.ice.turn_secret, principal.key, self.ice.turn_ttl_s
        )

    # extensions -----------------------------------------------------------------------------

    def add_messages(
        self, types: Iterable[str], adapter: TypeAdapter[M], handler: Callable[[Connection, M], Awaitable[None]]
    ) -> None:
        """Handle extra client message ``types`` (protocol additions such as the witness's) with ``handler``.

        ``adapter`` validates them.  They get what core messages get: the size and rate limits, hello
        first, and a :class:`~signaling.protocol.ProtocolError` raised by ``handler`` answered as an
        ``error`` with the connection kept open.  Core frames pay nothing for it: an extension is looked
        up only for a frame whose type the core protocol does not know.
        """
        for kind in types:
            if kind in p.CLIENT_TYPES or kind in self._extra:
                raise ValueError(f"message type {kind!r} is handled already; pick another name")
            self._extra[kind] = (adapter, handler)

    async def _handle_extra(self, conn: Connection, data: str | bytes, unknown: p.ProtocolError) -> None:
        obj = json.loads(data)  # valid JSON: p.parse got as far as the type
        kind = obj.get("type") if isinstance(obj, dict) else None
        extra = self._extra.get(kind) if isinstance(kind, str) else None
        if extra is None or not isinstance(kind, str):
            raise unknown
        adapter, handler = extra
        try:
            message = adapter.validate_python(obj)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = [str(x) for x in err["loc"]]
            where = ".".join(loc[1:] if loc[:1] == [kind] else loc) or kind  # a tagged union puts the tag first
            raise p.ProtocolError("invalid", f"{kind}: {where}: {err['msg']}", unknown.ref) from None
        if conn.principal is None:
            raise p.ProtocolError("hello_first", "send hello first", unknown.ref)
        await handler(conn, message)

    # connections ----------------------------------------------------------------------------

    async def handle(self, conn: Connection, data: str | bytes) -> None:
        """Handle one frame; protocol errors are answered and the connection stays open."""
        self.stats["in"] += 1
        try:
            if not conn.bucket.take():
                raise p.ProtocolError("rate_limited", "too many messages; slow down")
            try:
                message = p.parse(data, self.options.max_message_bytes)
            except p.ProtocolError as exc:
                if exc.code != "unknown_type" or not self._extra:
                    raise
                await self._handle_extra(conn, data, exc)
                return
            if conn.principal is None and not isinstance(message, p.Hello):
                raise p.ProtocolError("hello_first", "send hello first", message.ref)
            if isinstance(message, _RELAYED):
                assert conn.principal is not None
                await self._relay(conn.principal, message, data)
            else:
                await self._dispatch(conn, message)
        except p.ProtocolError as exc:
            self.stats["errors"] += 1
            await conn.send(p.dump(exc.to_message()))
        except self._outage_errors as exc:
            # Shared state or database unreachable: say so, keep the connection; the timer recovers.
            self.stats["errors"] += 1
            self._degrade(f"{type(exc).__name__}: {exc}")
            await conn.send(p.dump(p.ProtocolError(
                "unavailable", "the service is recovering from an outage; stay connected and try again shortly"
            ).to_message()))

    async def _dispatch(self, conn: Connection, m: p.ClientMessage) -> None:
        if isinstance(m, p.Hello):
            await self._hello(conn, m)
            return
        who = conn.principal
        assert who is not None
        if isinstance(m, p.Ping):
            await conn.send(p.dump(p.Pong(ref=m.ref)))
        elif isinstance(m, p.Join):
            self._need(who, m, "customer")
            await self._join(who, m)
        elif isinstance(m, p.Presence):
            self._need(who, m, *STAFF_ROLES)
            await self._presence(conn, who, m)
        elif isinstance(m, p.Accept):
            self._need(who, m, *STAFF_ROLES)
            await self._accept(who, m)
        elif isinstance(m, p.Decline):
            self._need(who, m, *STAFF_ROLES)
            await self._decline(who, m)
        elif isinstance(m, p.Hangup):
            await self._hangup(conn, who, m)
        elif isinstance(m, p.Transfer):
            self._need(who, m, *STAFF_ROLES)
            await self._transfer(who, m)
        elif isinstance(m, p.SilentJoin):
            self._need(who, m, "supervisor")
            await self._silent_join(conn, who, m)

    @staticmethod
    def _need(who: Principal, m: p.ClientMessage, *roles: str) -> None:
        if who.role not in roles:
            raise p.ProtocolError("forbidden", f"{m.type} may be sent by {' or '.join(roles)} only", m.ref)

    async def _hello(self, conn: Connection, m: p.Hello) -> None:
        if conn.principal is not None:
            raise p.ProtocolError("already_hello", "this connection has already said hello", m.ref)
        if conn.staff is not None:
            who = conn.staff
        elif m.token:
            call_id = await self.store.check_token(m.token, self.options.reconnect_grace_s)
            extra = None
            for check in self.token_checks if call_id is None else ():
                extra = extra or await check(m.token)
            if call_id is None and extra is None:
                raise p.ProtocolError("bad_token", "unknown or expired join token; join again", m.ref)
            who = extra or Principal("customer", call_id or "", "customer")
        else:
            raise p.ProtocolError(
                "login_required", "staff log in first; customers send the token from POST /api/customer/join", m.ref
            )
        old = self.conns.get(who.key)
        conn.principal = who
        self.conns[who.key] = conn
        if old is not None and old is not conn:
            await old.send(p.dump(p.Notice(code=p.NoticeCode.REPLACED, text="You connected again from elsewhere.")))
            await old.close()
        await self.bus.register(who.key)
        call = await self.bus.get_call(who.id) if who.role == "customer" else None
        servers = self.ice_for(who)
        conn.ice_sent_at = time.time()
        await conn.send(
            p.dump(
                p.Welcome(
                    ref=m.ref, role=who.role, id=who.id, node=self.node_id, resumed=call is not None,
                    call_id=who.id if who.role in ("customer", "helper") else None,
                    ice_servers=servers, ice_ttl_s=self.ice.turn_ttl_s if servers else 0,
                )
            )
        )
        if who.role == "customer" and call is not None:
            await self._resume_customer(who, call)
        elif who.role in STAFF_ROLES:
            async with self.bus.lock():
                agent = await self.bus.get_agent(who.id)
                if agent is None:
                    agent = AgentRecord(id=who.id, role=who.role, name=who.name, skills=sorted(who.skills),
                                        state_since=time.time())
                agent.node = self.node_id
                if agent.restored_until is not None:  # back after a restart: theirs again
                    agent.restored_until = None
                    agent.name = who.name
                    agent.skills = sorted(who.skills)
                await self.bus.put_agent(agent, self.options.presence_ttl_s)
                current = await self.bus.get_call(agent.call_id) if agent.call_id else None
            await conn.send(p.dump(self._status(agent, p.AgentStatus, time.time())))
            if current is not None and current.status == "in_call" and current.agent_id == who.id:
                await self._resume_agent(who, current)
        for hook in self.hello_hooks:
            await hook(conn, who)

    async def _resume_agent(self, who: Principal, call: CallRecord) -> None:
        """A staff member says hello with a connected call (back after a restart): put them through
        again; they make the offer; they are told whether the customer is back yet."""
        customer = customer_key(call.call_id)
        await self._to(who.key, p.CallStarted(call_id=call.call_id, lane=call.lane, peer=customer,
                                              peer_name="customer", resumed=True,
                                              claimed_phone=call.claimed_phone,
                                              claimed_account=call.claimed_account))
        if call.disconnected_at is not None:
            await self._to(who.key, p.PeerState(call_id=call.call_id, peer=customer, state="lost"))

    async def _resume_customer(self, who: Principal, call: CallRecord) -> None:
        async with self.bus.lock():
            current = await self.bus.get_call(who.id)
            if current is None:
                return
            current.disconnected_at = None
            await self.bus.put_call(current)
        if current.status == "in_call" and current.agent_id:
            await self._to(
                who.key,
                p.CallStarted(call_id=current.call_id, lane=current.lane, peer=self._agent_key(current),
                              peer_name=current.agent_name or current.agent_id, resumed=True),
            )
            await self._to(self._agent_key(current), p.PeerState(call_id=current.call_id, peer=who.key,
                                                                    state="back"))
        else:
            await self._push_status(only=who.key)
            await self._kick()

    async def disconnected(self, conn: Connection) -> None:
        """The connection is gone: keep a customer's place for the grace period; requeue an agent's call."""
        try:
            await self._disconnected(conn)
        except self._outage_errors as exc:
            self._degrade(f"{type(exc).__name__}: {exc}")
            if conn.principal is not None:
                self.conns.pop(conn.principal.key, None)
                self._lost_in_outage.add(conn.principal.key)

    async def _disconnected(self, conn: Connection) -> None:
        conn.closed = True
        who = conn.principal
        if who is None or self.conns.get(who.key) is not conn:
            return
        del self.conns[who.key]
        if self.closing:  # the node stops: calls and presence wait for the parties to come back
            return
        await self.bus.unregister(who.key)
        now = time.time()
        if who.role not in ("customer", *STAFF_ROLES):
            for leave in self.leave_hooks:
                await leave(who)
            return
        if who.role == "customer":
            async with self.bus.lock():
                call = await self.bus.get_call(who.id)
                if call is None:
                    return
                call.disconnected_at = now
                withdrawn = call.offered_to if call.status == "offered" else None
                if withdrawn:
                    await self._withdraw(call, "customer_lost")
                await self.bus.put_call(call)
            if call.status == "in_call" and call.agent_id:
                await self._to(self._agent_key(call), p.PeerState(call_id=call.call_id, peer=who.key,
                                                                     state="lost"))
            return
        async with self.bus.lock():
            agent = await self.bus.get_agent(who.id)
            await self.bus.remove_agent(who.id)
            for call_id in conn.monitoring:
                mon = await self.bus.get_call(call_id)
                if mon is not None and who.id in mon.monitors:
                    mon.monitors.remove(who.id)
                    await self.bus.put_call(mon)
            if agent is not None and agent.offer_call:
                offered = await self.bus.get_call(agent.offer_call)
                if offered is not None and offered.offered_to == who.id:
                    offered.offered_to = None
                    offered.status = "queued"
                    await self.bus.put_call(offered)
            if agent is not None and agent.call_id:
                call = await self.bus.get_call(agent.call_id)
                if call is not None and call.agent_id == who.id:
                    await self._requeue_head(call, "agent_lost", who)
        await self._kick()

    # queue ----------------------------------------------------------------------------------

    async def _join(self, who: Principal, m: p.Join) -> None:
        existing = await self.bus.get_call(who.id)
        if existing is not None:
            raise p.ProtocolError("already_joined", "you are already in the queue or in a call", m.ref)
        age = m.age
        if age is None and self.age_lookup is not None and (m.claimed_phone or m.claimed_account):
            age = await self.age_lookup(m.claimed_phone, m.claimed_account)
        care = m.care or (age is not None and age >= CARE_AGE) or await self.store.token_care(who.id)
        now = time.time()
        call = CallRecord(
            call_id=who.id, lane="care" if care else "general", score=now * 1000.0, joined_at=now, queued_at=now,
            care=care, age=age, claimed_phone=m.claimed_phone, claimed_account=m.claimed_account,
            face_consent=m.face_consent, face_consent_at=now if m.face_consent is not None else None,
            no_video=m.no_video,
        )
        call.leg = await self.store.open_leg(call)
        async with self.bus.lock():
            if await self.bus.get_call(who.id) is not None:
                raise p.ProtocolError("already_joined", "you are already in the queue or in a call", m.ref)
            await self.bus.enqueue(call)
        await self.store.save_call(call)
        await self._emit(self._event("joined", call, who))
        await self._push_status()  # everyone's: a care caller goes ahead of those in the general lane
        await self._kick()

    async def _requeue_head(self, call: CallRecord, reason: str, actor: Principal | None,
                            target_agent: str | None = None, target_role: str | None = None) -> None:
        """Put a call back at the head of its lane (agent lost, transfer).  Caller holds the lock."""
        now = time.time()
        agent_id = call.agent_id
        if call.leg is not None:
            await self.store.close_leg(call.leg, reason, now)
        monitors = list(call.monitors)
        call.status = "queued"
        call.score = await self.bus.head_score(call.lane)
        call.queued_at = now
        call.agent_id = call.agent_name = call.agent_role = None
        call.offered_to = None
        call.answered_at = None
        call.monitors = []
        call.tried = [agent_id] if agent_id and reason == "transferred" else []
        call.target_agent = target_agent
        call.target_role = "supervisor" if target_role == "supervisor" else None
        call.transfer_from = agent_id if reason == "transferred" else None
        call.leg = await self.store.open_leg(call)
        await self.bus.enqueue(call)
        await self.store.save_call(call)
        code, text = {
            "agent_lost": (p.NoticeCode.AGENT_LOST,
                           "Your agent's connection dropped. You are first in line for the next agent."),
            "transferred": (p.NoticeCode.TRANSFERRED,
                            "You are being put through to a colleague. Please stay on the line."),
            "server_restart": (p.NoticeCode.RESTART_REQUEUED,
                               "The service restarted and your agent did not come back. You are first in line."),
        }.get(reason, (p.NoticeCode.REQUEUED, "You are back in the queue, first in line."))
        await self._to(customer_key(call.call_id), p.Notice(code=code, text=text, call_id=call.call_id))
        await self._to(customer_key(call.call_id), p.CallEnded(call_id=call.call_id, reason=reason))
        for sup in monitors:
            await self._to(f"supervisor:{sup}", p.CallEnded(call_id=call.call_id, reason=reason))
        await self._emit(self._event("requeued" if reason != "transferred" else "transferred", call, actor,
                                     agent=agent_id, reason=reason))

    async def _end_call(self, call: CallRecord, reason: str, by: Principal | None) -> None:
        """End a queued or connected call for good.  Caller holds the lock."""
        now = time.time()
        await self.bus.delete_call(call.call_id)
        await self.store.forget_call(call.call_id)
        await self.store.end_token(call.call_id)
        outcome = "abandoned" if call.status != "in_call" else reason
        if call.leg is not None:
            await self.store.close_leg(call.leg, outcome, now)
        if call.status == "offered" and call.offered_to:
            await self._withdraw(call, reason)
        by_key = by.key if by else None
        ended = p.CallEnded(call_id=call.call_id, reason=reason, by=by_key)
        await self._to(customer_key(call.call_id), ended)
        if call.status == "in_call" and call.agent_id:
            if call.answered_at:
                self._handle_times = [*self._handle_times[-99:], now - call.answered_at]
            agent = await self.bus.get_agent(call.agent_id)
            await self._to(self._agent_key(call), ended)
            if agent is not None and agent.call_id == call.call_id:
                agent.call_id = None
                await self._enter(agent, self._after_call, now)
        for sup in call.monitors:
            await self._to(f"supervisor:{sup}", ended)
        await self._emit(self._event("abandoned" if outcome == "abandoned" else "ended", call, by, reason=reason))

    async def _withdraw(self, call: CallRecord, reason: str) -> None:
        """Take back an offer made to an agent.  Caller holds the lock."""
        agent_id = call.offered_to
        call.offered_to = None
        call.status = "queued"
        if agent_id is None:
            return
        agent = await self.bus.get_agent(agent_id)
        if agent is not None and agent.offer_call == call.call_id:
            agent.offer_call = None
            await self._to(f"{agent.role}:{agent_id}", p.OfferWithdrawn(call_id=call.call_id, reason=reason))
            await self._enter(agent, AgentState.AVAILABLE, time.time())

    # agents' states -------------------------------------------------------------------------

    def _status(self, agent: AgentRecord, kind: type[p.PresenceAck] | type[p.AgentStatus], now: float,
                ref: str | None = None) -> p.PresenceAck | p.AgentStatus:
        left = None
        if agent.state is AgentState.WRAP_UP and agent.wrap_up_until is not None:
            left = round(max(0.0, agent.wrap_up_until - now), 1)
        return kind(ref=ref, state=agent.state, skills=agent.skills,
                    in_state_s=round(max(0.0, now - agent.state_since), 1), wrap_up_left_s=left,
                    call_id=agent.call_id or agent.offer_call)

    @property
    def _after_call(self) -> AgentState:
        """Where a call's end leaves its agent: after-call work, or available when none is configured."""
        return AgentState.WRAP_UP if self.options.wrap_up_s > 0 else AgentState.AVAILABLE

    async def _enter(self, agent: AgentRecord, state: AgentState, now: float, tell: bool = True) -> None:
        """Put ``agent`` in ``state`` (the one place states change), store it and tell their console.

        Under lock.  Wrap-up gets its limit (none configured: the call ends in ``available``); becoming
        available after anything but an offer starts the idle time that ranks agents for the next call.
        """
        if state is AgentState.AVAILABLE and agent.state not in (AgentState.AVAILABLE, AgentState.OFFERED):
            agent.idle_since = now
        if state is not agent.state:
            agent.state = state
            agent.state_since = now
        agent.wrap_up_until = None
        if state is AgentState.WRAP_UP and self.options.wrap_up_s > 0:
            agent.wrap_up_until = now + self.options.wrap_up_s
        await self.bus.put_agent(agent, self.options.presence_ttl_s)
        if tell:
            await self._to(f"{agent.role}:{agent.id}", self._status(agent, p.AgentStatus, now))

    async def _end_wrap_ups(self, now: float) -> None:
        """After-call work past its limit ends: the agent is available again (routing follows).  Under lock."""
        for seen in await self.bus.read_agents():
            if seen.state is AgentState.WRAP_UP and seen.wrap_up_until is not None and seen.wrap_up_until <= now:
                agent = await self.bus.get_agent(seen.id)
                if agent is not None:
                    await self._enter(agent, AgentState.AVAILABLE, now)

    # staff ----------------------------------------------------------------------------------

    async def _presence(self, conn: Connection, who: Principal, m: p.Presence) -> None:
        """The staff member's choice: ``available``, ``away``, or ``wrap_up`` (in after-call work: extend
        it by the limit).  In a call the call decides (its end brings wrap-up); offered, ``available``
        keeps the offer and anything else hands it back to the queue."""
        skills = sorted(who.skills if m.skills is None else who.skills.intersection(m.skills))
        now = time.time()
        async with self.bus.lock():
            agent = await self.bus.get_agent(who.id) or AgentRecord(id=who.id, role=who.role, name=who.name,
                                                                    state_since=now)
            agent.skills = skills
            agent.node = self.node_id
            if agent.call_id is not None:
                await self.bus.put_agent(agent, self.options.presence_ttl_s)
                raise p.ProtocolError("in_call", "you are in a call: wrap-up follows when it ends", m.ref)
            wanted = AgentState(m.state)
            if wanted is not AgentState.AVAILABLE and agent.offer_call:
                offered = await self.bus.get_call(agent.offer_call)
                agent.offer_call = None
                if offered is not None and offered.offered_to == who.id:
                    offered.offered_to = None
                    offered.status = "queued"
                    await self.bus.put_call(offered)
            if wanted is AgentState.AVAILABLE and agent.offer_call:
                wanted = AgentState.OFFERED
            await self._enter(agent, wanted, now, tell=False)  # wrap-up again: extended from now
        await conn.send(p.dump(self._status(agent, p.PresenceAck, now, m.ref)))
        await self._kick()

    async def _accept(self, who: Principal, m: p.Accept) -> None:
        async with self.bus.lock():
            call = await self.bus.get_call(m.call_id)
            if call is None or call.status != "offered" or call.offered_to != who.id:
                raise p.ProtocolError("offer_gone", "this call is no longer offered to you", m.ref)
            now = time.time()
            call.status = "in_call"
            call.offered_to = None
            call.agent_id = who.id
            call.agent_name = who.name
            call.agent_role = who.role
            call.answered_at = now
            call.target_agent = None
            call.target_role = None
            if not call.recording:
                call.unrecorded_since = now
            await self.bus.dequeue(call)
            agent = await self.bus.get_agent(who.id) or AgentRecord(id=who.id, role=who.role, name=who.name)
            agent.offer_call = None
            agent.call_id = call.call_id
            await self._enter(agent, AgentState.IN_CALL, now)
        await self.store.save_call(call)
        if call.leg is not None:
            await self.store.answer_leg(call.leg, who.id, now)
        await self._to(
            customer_key(call.call_id),
            p.CallStarted(call_id=call.call_id, lane=call.lane, peer=who.key, peer_name=who.name or who.id),
        )
        await self._to(
            who.key,
            p.CallStarted(ref=m.ref, call_id=call.call_id, lane=call.lane, peer=customer_key(call.call_id),
                          peer_name="customer", claimed_phone=call.claimed_phone,
                          claimed_account=call.claimed_account, no_video=call.no_video),
        )
        await self._emit(self._event("accepted", call, who))
        await self._push_status()  # those still waiting here move up now (other nodes: at their next status)

    async def _decline(self, who: Principal, m: p.Decline) -> None:
        async with self.bus.lock():
            call = await self.bus.get_call(m.call_id)
            if call is None or call.offered_to != who.id:
                raise p.ProtocolError("offer_gone", "this call is no longer offered to you", m.ref)
            call.tried.append(who.id)
            call.offered_to = None
            call.status = "queued"
            if call.target_agent == who.id:
                call.target_agent = None
            await self.bus.put_call(call)
            agent = await self.bus.get_agent(who.id)
            if agent is not None:
                agent.offer_call = None
                await self._enter(agent, AgentState.AVAILABLE, time.time())
        await self._kick()

    async def _transfer(self, who: Principal, m: p.Transfer) -> None:
        async with self.bus.lock():
            call = await self.bus.get_call(m.call_id)
            if call is None or call.agent_id != who.id or call.status != "in_call":
                raise p.ProtocolError("not_in_call", "you can transfer only your own connected call", m.ref)
            if m.to == "agent" and m.agent == who.id:
                raise p.ProtocolError("invalid", "transfer: pick another agent", m.ref)
            agent = await self.bus.get_agent(who.id)
            if agent is not None:
                agent.call_id = None
                await self._enter(agent, self._after_call, time.time())
            await self._requeue_head(call, "transferred", who, target_agent=m.agent if m.to == "agent" else None,
                                     target_role="supervisor" if m.to == "supervisor" else None)
        await self._to(who.key, p.CallEnded(ref=m.ref, call_id=m.call_id, reason="transferred", by=who.key))
        await self._kick()

    async def _silent_join(self, conn: Connection, who: Principal, m: p.SilentJoin) -> None:
        async with self.bus.lock():
            call = await self.bus.get_call(m.call_id)
            if call is None or call.status != "in_call" or call.agent_id is None:
                raise p.ProtocolError("not_in_call", "this call is not connected to an agent", m.ref)
            if who.id not in call.monitors:
                call.monitors.append(who.id)
                await self.bus.put_call(call)
        conn.monitoring.add(call.call_id)
        await conn.send(p.dump(p.Monitoring(ref=m.ref, call_id=call.call_id, agent=self._agent_key(call),
                                            customer=customer_key(call.call_id), lane=call.lane)))
        await self._to(self._agent_key(call), p.MonitorJoined(call_id=call.call_id, supervisor=who.key))
        await self._emit(self._event("monitored", call, who))

    async def _hangup(self, conn: Connection, who: Principal, m: p.Hangup) -> None:
        call_id = m.call_id or (who.id if who.role == "customer" else None)
        if call_id is None:
            raise p.ProtocolError("invalid", "hangup: call_id is required for staff", m.ref)
        async with self.bus.lock():
            call = await self.bus.get_call(call_id)
            if call is None:
                raise p.ProtocolError("not_in_call", "no such call", m.ref)
            if who.role == "supervisor" and who.id in call.monitors and call.agent_id != who.id:
                call.monitors.remove(who.id)
                await self.bus.put_call(call)
                conn.monitoring.discard(call_id)
                await conn.send(p.dump(p.CallEnded(ref=m.ref, call_id=call_id, reason="left", by=who.key)))
                return
            if not (who.role == "customer" and who.id == call_id) and call.agent_id != who.id:
                raise p.ProtocolError("forbidden", "this is not your call", m.ref)
            await self._end_call(call, m.reason or "hangup", who)
        await self._kick()

    # relay ----------------------------------------------------------------------------------

    async def _relay(
        self, who: Principal, m: p.Sdp | p.Ice | p.Chat | p.PushStep | p.StepResult, raw: str | bytes
    ) -> None:
        if m.sender is not None:
            raise p.ProtocolError("invalid", f"{m.type}: sender is set by the server; leave it out", m.ref)
        call = await self.bus.read_call(m.call_id)
        if call is None or call.status != "in_call" or call.agent_id is None:
            raise p.ProtocolError("not_in_call", f"{m.type}: call {m.call_id} is not connected", m.ref)
        customer = customer_key(call.call_id)
        monitors = [f"supervisor:{s}" for s in call.monitors]
        # A helper (家属) the holder has not refused is a third party: reached with ``to``, reads along.
        helper = f"helper:{call.call_id}" if call.helper_present and call.helper_consent != "refused" else None
        alongside = [helper] if helper and isinstance(m, (p.Chat, p.PushStep)) else []
        to = getattr(m, "to", None)
        targets: list[str]
        if who.role == "customer" and who.id == call.call_id:
            if isinstance(m, p.PushStep):
                raise p.ProtocolError("forbidden", "push_step may be sent by the agent only", m.ref)
            if helper is not None and to == helper:
                targets = [helper]
            else:
                targets = [self._agent_key(call), *alongside]
                if isinstance(m, p.Chat):
                    targets += monitors
        elif who.key == self._agent_key(call):
            if isinstance(m, p.StepResult):
                raise p.ProtocolError("forbidden", "step_result may be sent by the customer only", m.ref)
            if to is not None and to != customer:
                if to not in monitors and to != helper:
                    raise p.ProtocolError("bad_target", f"{to} is not on this call", m.ref)
                targets = [to]
            else:
                targets = [customer, *alongside]
                if isinstance(m, p.Chat):
                    targets += monitors
        elif who.role == "helper" and who.key == helper:
            if isinstance(m, p.PushStep):
                raise p.ProtocolError("forbidden", "push_step may be sent by the agent only", m.ref)
            if to is not None and to in (customer, self._agent_key(call)):
                targets = [to]
            else:
                targets = [self._agent_key(call)]
                if isinstance(m, p.Chat):
                    targets += [customer, *monitors]
        elif who.role == "supervisor" and who.id in call.monitors:
            if isinstance(m, (p.PushStep, p.StepResult)):
                raise p.ProtocolError("forbidden", "a listening supervisor cannot push steps", m.ref)
            targets = [self._agent_key(call)]
        else:
            raise p.ProtocolError("forbidden", "you are not on this call", m.ref)
        # The message was validated as sent; forward it as sent, with the sender put in front.
        text = (raw.decode() if isinstance(raw, bytes) else raw).lstrip()
        if text.startswith("{"):
            text = who.sender_prefix + text[1:]
        else:
            text = p.dump(m.model_copy(update={"sender": who.key}))
        for key in targets:
            await self.bus.send(key, text)
        self.stats["relayed"] += 1
        if isinstance(m, p.Chat) and self.chat_hooks:
            await self._chat(ChatLine(call.call_id, who.role, who.audit_id, m.text,
                                      call.claimed_account or call.claimed_phone))

    @staticmethod
    def _agent_key(call: CallRecord) -> str:
        return f"{call.agent_role or 'agent'}:{call.agent_id}"

    # routing --------------------------------------------------------------------------------

    async def _kick(self) -> None:
        """Run a routing pass now (after anything that may let a call through)."""
        async with self.bus.lock():
            await self._route(time.time())

    async def _route(self, now: float) -> None:
        """Offer waiting calls to free agents: care lane first, FIFO, longest-idle agent.  Under lock."""
        free = [
            a for a in await self.bus.read_agents()
            if a.state is AgentState.AVAILABLE and a.call_id is None and a.offer_call is None
        ]
        for lane in LANES:
            for call_id, _ in await self.bus.lane(lane):
                if not free:
                    return
                call = await self.bus.get_call(call_id)
                if call is None or call.status != "queued":
                    continue
                eligible = [a for a in free if self._eligible(a, call)]
                if call.disconnected_at is not None:
                    if eligible and call.kept_until is not None and call.kept_until > now:
                        free.remove(min(eligible, key=lambda a: (a.idle_since, a.id)))  # held for their return
                    continue
                if not eligible:
                    continue
                chosen = min(eligible, key=lambda a: (a.id in call.tried, a.idle_since, a.id))
                free.remove(chosen)
                pick = await self.bus.get_agent(chosen.id) or chosen.model_copy(deep=True)
                call.status = "offered"
                call.offered_to = pick.id
                call.offer_deadline = now + self.options.offer_timeout_s
                pick.offer_call = call.call_id
                await self.bus.put_call(call)
                await self._enter(pick, AgentState.OFFERED, now, tell=False)
                await self._to(
                    f"{pick.role}:{pick.id}",
                    p.CallOffer(call_id=call.call_id, lane=call.lane, waited_s=round(now - call.queued_at, 3),
                                expires_s=self.options.offer_timeout_s, claimed_phone=call.claimed_phone,
                                claimed_account=call.claimed_account, transfer_from=call.transfer_from,
                                no_video=call.no_video),
                )
                await self._to(f"{pick.role}:{pick.id}", self._status(pick, p.AgentStatus, now))

    @staticmethod
    def _eligible(agent: AgentRecord, call: CallRecord) -> bool:
        if call.target_agent is not None:
            return agent.id == call.target_agent
        if call.target_role is not None:
            return agent.role == call.target_role
        return agent.role == "agent" and call.lane in agent.skills

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick_s)
            try:
                if self.degraded is not None:
                    await self.recover()
                await self.tick()
            except asyncio.CancelledError:
                raise
            except self._outage_errors as exc:
                self._degrade(f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("signaling: timer pass failed; retrying")

    async def _orphaned(self, key: str, now: float) -> None:
        """``key`` was connected to a node that died without a word: a customer's grace period starts
        now and their agent is told; a dead node's agents lapse with their presence.  Under lock."""
        if not key.startswith("customer:"):
            for hook in self.orphan_hooks:
                await hook(key, now)
            return
        call = await self.bus.get_call(key.removeprefix("customer:"))
        log.info("signaling: %s was on a node that stopped answering (%s)", key,
                 "no call" if call is None else f"{call.status}, disconnected_at={call.disconnected_at}")
        if call is None or call.disconnected_at is not None:
            return
        call.disconnected_at = now
        if call.status == "offered" and call.offered_to:
            await self._withdraw(call, "customer_lost")
        await self.bus.put_call(call)
        if call.status == "in_call" and call.agent_id:
            await self._to(self._agent_key(call), p.PeerState(call_id=call.call_id, peer=key, state="lost"))

    async def _sweep_unconnected(self, now: float) -> None:
        """Calls counted as connected whose customer is connected to no node, on two passes in a row
        (a disconnect lost in an outage, a node gone before it said so): their grace starts.  Under lock."""
        connected = await self.bus.connected_keys()
        unconnected = {c.call_id for c in await self.bus.read_calls()
                       if c.disconnected_at is None and customer_key(c.call_id) not in connected}
        gone, self._unconnected_seen = unconnected & self._unconnected_seen, unconnected - self._unconnected_seen
        for call_id in sorted(gone):
            await self._orphaned(customer_key(call_id), now)

    # outages ---------------------------------------------------------------------------------

    def _degrade(self, reason: str) -> None:
        if self.degraded is None:
            log.warning("signaling: degraded (%s); relaying and routing resume when it answers again", reason)
        self.degraded = reason

    async def recover(self) -> None:
        """After an outage of the shared state: put back what this node knows (its connections, the
        persisted calls with their agents' presence), then route again.  Safe to run on every node."""
        if not self.bus.receiving():
            raise ConnectionError("not subscribed to this node's channel yet")
        now = time.time()
        saved = await self.store.saved_calls()
        await self.bus.heartbeat_node(self.options.presence_ttl_s)  # before others take us for dead
        async with self.bus.lock():
            for key in list(self.conns):
                await self.bus.register(key)
                if key.startswith("customer:"):  # connected here: whatever a failed hello left says
                    back = await self.bus.get_call(key.removeprefix("customer:"))
                    if back is not None and back.disconnected_at is not None:
                        back.disconnected_at = None
                        await self.bus.put_call(back)
            for key in self._lost_in_outage - set(self.conns):  # closed while the shared state was away
                await self.bus.unregister(key)
                await self._orphaned(key, now)
            in_call: dict[str, str] = {}
            for call in saved:
                if customer_key(call.call_id) in self._lost_in_outage and call.disconnected_at is None:
                    call.disconnected_at = now
                if await self.bus.get_call(call.call_id) is not None:
                    continue
                if call.status == "in_call" and call.agent_id:
                    in_call[call.agent_id] = call.call_id
                    await self.bus.put_call(call)
                else:
                    call.status = "queued"
                    call.offered_to = None
                    await self.bus.enqueue(call)
            for conn in self.conns.values():
                who = conn.principal
                if who is not None and who.role in STAFF_ROLES and await self.bus.get_agent(who.id) is None:
                    call_id = in_call.get(who.id)
                    await self.bus.put_agent(AgentRecord(
                        id=who.id, role=who.role, name=who.name, skills=sorted(who.skills), node=self.node_id,
                        state=AgentState.IN_CALL if call_id else AgentState.AWAY, state_since=now, call_id=call_id,
                    ), self.options.presence_ttl_s)
                    if call_id is None:
                        await conn.send(p.dump(p.PresenceAck(state=AgentState.AWAY, skills=sorted(who.skills))))
            for agent_id, call_id in in_call.items():  # agents on other nodes: until their heartbeat
                if await self.bus.get_agent(agent_id) is None:
                    await self.bus.put_agent(AgentRecord(id=agent_id, role="agent", state=AgentState.IN_CALL,
                                                         state_since=now, call_id=call_id),
                                             self.options.presence_ttl_s)
        self._lost_in_outage.clear()
        log.warning("signaling: recovered (%d persisted calls checked)", len(saved))
        self.degraded = None
        await self._kick()
        await self._push_status()

    async def tick(self, now: float | None = None) -> None:
        """Heartbeat presence, time out offers, drop customers gone too long, route, push queue status."""
        now = time.time() if now is None else now
        async with self.bus.lock():
            if now - self._last_heartbeat >= self.options.presence_ttl_s / 3:
                self._last_heartbeat = now
                await self.bus.heartbeat_node(self.options.presence_ttl_s)
                for key in await self.bus.orphaned_keys():
                    await self._orphaned(key, now)
                for key in await self.bus.stale_keys():
                    await self._orphaned(key, now)
                await self._sweep_unconnected(now)
                for conn in list(self.conns.values()):
                    who = conn.principal
                    if who is not None and who.role in STAFF_ROLES:
                        agent = await self.bus.get_agent(who.id)
                        if agent is not None:
                            await self.bus.put_agent(agent, self.options.presence_ttl_s)
            not_back: set[str] = set()  # restored by a restart; their agent did not reconnect in time
            for agent in await self.bus.agents():
                if agent.restored_until is not None and now > agent.restored_until:
                    await self.bus.remove_agent(agent.id)
                    if agent.call_id:
                        not_back.add(agent.call_id)
            present = {a.id for a in await self.bus.read_agents()}
            due = [
                c.call_id
                for c in await self.bus.read_calls()
                if (c.status == "offered" and c.offer_deadline < now)
                or self._gone(c, now)
                or (c.status == "in_call" and c.agent_id not in present)
            ]
            for call_id in due:
                call = await self.bus.get_call(call_id)
                if call is None:
                    continue
                if call.status == "offered" and call.offer_deadline < now:
                    await self._offer_timed_out(call)
                elif self._gone(call, now):
                    await self._end_call(call, "customer_lost" if call.status == "in_call" else
                                         "abandoned" if call.kept_until is None else "place_released", None)
                elif call.status == "in_call" and call.agent_id not in present:
                    await self._requeue_head(call, "server_restart" if call_id in not_back else "agent_lost", None)
            await self._end_wrap_ups(now)
            await self._route(now)
        if now - self._last_status >= self.options.status_interval_s:
            self._last_status = now
            await self._push_status()
        await self._refresh_ice(now)

    def _gone(self, call: CallRecord, now: float) -> bool:
        """The customer left and did not come back in time: the reconnect grace, or their kept place's time."""
        if call.disconnected_at is None:
            return False
        if call.kept_until is not None and call.status == "queued":
            return now > call.kept_until
        return now - call.disconnected_at > self.options.reconnect_grace_s

    async def _offer_timed_out(self, call: CallRecord) -> None:
        agent_id = call.offered_to
        call.offered_to = None
        call.status = "queued"
        if agent_id:
            call.tried.append(agent_id)
        await self.bus.put_call(call)
        if agent_id is None:
            return
        agent = await self.bus.get_agent(agent_id)
        if agent is not None:
            agent.offer_call = None
            now = time.time()
            await self._enter(agent, AgentState.AWAY, now, tell=False)  # not answering: no offers until they say so
            key = f"{agent.role}:{agent_id}"
            await self._to(key, p.OfferTimeout(call_id=call.call_id))
            await self._to(key, self._status(agent, p.PresenceAck, now))

    async def _push_status(self, only: str | None = None) -> None:
        """Send position and estimated wait to customers connected here (or just ``only``).

        The position is true across lanes: routing serves the care lane first, so everyone waiting in
        the care lane is ahead of a general caller (``position`` 1: next)."""
        keys = [only] if only else [k for k in self.conns if k.startswith("customer:")]
        if not keys:
            return
        handle = await self.handle_s()  # before reading the lanes: what is sent is what they hold now
        entries_of = {lane: await self.bus.lane(lane) for lane in LANES}
        now = lanes_now(await self.bus.read_agents(), {lane: len(e) for lane, e in entries_of.items()}, handle)
        ahead = 0
        for lane, entries in entries_of.items():
            for place, (call_id, _) in enumerate(entries, start=1):
                key = customer_key(call_id)
                if key in keys and key in self.conns:
                    # the estimate counts the calls served first itself (``ahead_elsewhere``)
                    est = round(expected_wait_s(place, now[lane]), 1)
                    await self.conns[key].send(p.dump(p.QueueStatus(
                        call_id=call_id, lane=lane, position=ahead + place, est_wait_s=est)))
            ahead += len(entries)

    async def _refresh_ice(self, now: float) -> None:
        if not (self.ice.turn_urls and self.ice.turn_secret):
            return
        for conn in list(self.conns.values()):
            if conn.principal is not None and now - conn.ice_sent_at > self.ice.turn_ttl_s / 2:
                conn.ice_sent_at = now
                servers = self.ice_for(conn.principal)
                await conn.send(p.dump(p.IceServers(ice_servers=servers, ttl_s=self.ice.turn_ttl_s)))

    async def handle_s(self) -> dict[str, float]:
        """Each lane's mean handle time for the wait estimates: recent talk times plus the after-call work limit."""
        return {lane: await self.handle_times.mean_s(lane) + self.options.wrap_up_s for lane in LANES}

    async def lanes_now(self, queued: dict[str, int]) -> dict[str, LaneNow]:
        """What the wait estimates use per lane: agents serving, free, and the mean handle time."""
        handle = await self.handle_s()
        return lanes_now(await self.bus.read_agents(), queued, handle)

    def average_handle_s(self) -> float:
        """Average handle time of this node's recent calls (a configured default before any)."""
        if not self._handle_times:
            return self.options.default_handle_s
        return sum(self._handle_times) / len(self._handle_times)

    async def snapshot(self) -> dict[str, object]:
        """The live queue and agents, for the supervisor wall."""
        now = time.time()
        lanes: dict[str, list[dict[str, object]]] = {}
        entries_of: dict[str, list[tuple[str, float]]] = {lane: await self.bus.lane(lane) for lane in LANES}
        waits = await self.lanes_now({lane: len(e) for lane, e in entries_of.items()})
        for lane, entries in entries_of.items():
            rows = []
            for position, (call_id, _) in enumerate(entries, start=1):
                call = await self.bus.get_call(call_id)
                if call is not None:
                    rows.append({"call_id": call_id, "position": position, "status": call.status,
                                 "waited_s": round(now - call.queued_at, 1), "offered_to": call.offered_to,
                                 "connected": call.disconnected_at is None,
                                 "est_wait_s": round(expected_wait_s(position, waits[lane]), 1)})
            lanes[lane] = rows
        expected = {lane: round(expected_wait_s(len(entries_of[lane]) + 1, w), 1) for lane, w in waits.items()}
        agents = [
            {"id": a.id, "role": a.role, "name": a.name, "state": a.state, "skills": a.skills,
             "call_id": a.call_id, "offer": a.offer_call, "node": a.node,
             "idle_s": round(now - a.idle_since, 1) if a.state is AgentState.AVAILABLE and a.idle_since else None,
             "state_s": round(max(0.0, now - a.state_since), 1) if a.state_since else None,
             "wrap_up_left_s": round(max(0.0, a.wrap_up_until - now), 1)
             if a.state is AgentState.WRAP_UP and a.wrap_up_until is not None else None}
            for a in sorted(await self.bus.agents(), key=lambda a: a.id)
        ]
        calls = [
            {"call_id": c.call_id, "lane": c.lane, "agent": c.agent_id, "monitors": c.monitors,
             "talking_s": round(now - c.answered_at, 1) if c.answered_at else None,
             "recording": c.recording, "unrecorded_s": round(c.unrecorded_for(now), 1)}
            for c in await self.bus.calls() if c.status == "in_call"
        ]
        return {"node": self.node_id, "lanes": lanes, "agents": agents, "calls": calls, "expected_wait_s": expected}
