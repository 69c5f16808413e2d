"""What every part of the signaling service shares: its state, the call events, and sending on the bus.

:class:`ServiceCore` holds one node's state (connections, hooks, outage bookkeeping) and the few
helpers every part uses; the parts (:mod:`signaling.presence`, :mod:`signaling.routing`, ...) build
on it, and :class:`signaling.service.SignalingService` puts them together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter

from signaling import protocol as p
from signaling.bus import Bus
from signaling.ice import ice_servers
from signaling.options import SignalingOptions
from signaling.state import CallRecord, Principal, customer_key
from signaling.store import JoinToken, SignalingStore
from signaling.waits import HandleTimes
from storage import DatabaseError

if TYPE_CHECKING:
    from signaling.connections import Connection

log = logging.getLogger("signaling")

STAFF_ROLES = ("agent", "supervisor")


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


@dataclass(frozen=True)
class IceConfig:
    """STUN and TURN servers for the parties (TURN credentials are minted per principal)."""

    stun_urls: list[str] = field(default_factory=list)
    turn_urls: list[str] = field(default_factory=list)
    turn_secret: str = ""
    turn_ttl_s: int = 600


class ServiceCore:
    """One node's signaling state and the helpers every part of the service uses."""

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
        """This node's name on the bus."""
        return self.bus.node_id

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

    async def mint_join(self, care: bool = False) -> JoinToken:
        """A join token for an anonymous customer (``POST /api/customer/join``)."""
        return await self.store.mint_token(self.options.join_token_ttl_s, care)

    def ice_for(self, principal: Principal) -> list[p.IceServer]:
        """The ICE servers for ``principal``, TURN credentials minted for their key."""
        return ice_servers(
            self.ice.stun_urls, self.ice.turn_urls, self.ice.turn_secret, principal.key, self.ice.turn_ttl_s
        )

    async def _refresh_ice(self, now: float) -> None:
        """Send fresh TURN credentials to connections whose last ones are half way to expiring."""
        if not (self.ice.turn_urls and self.ice.turn_secret):
            return
        for conn in list(self.conns.values()):
            if conn.principal is not None and now - conn.ice_sent_at > self.ice.turn_ttl_s / 2:
                conn.ice_sent_at = now
                servers = self.ice_for(conn.principal)
                await conn.send(p.dump(p.IceServers(ice_servers=servers, ttl_s=self.ice.turn_ttl_s)))

    @staticmethod
    def _agent_key(call: CallRecord) -> str:
        return f"{call.agent_role or 'agent'}:{call.agent_id}"

    def _degrade(self, reason: str) -> None:
        if self.degraded is None:
            log.warning("signaling: degraded (%s); relaying and routing resume when it answers again", reason)
        self.degraded = reason

    async def _kick(self) -> None:
        """Run a routing pass now (after anything that may let a call through): see :mod:`signaling.routing`."""
        raise NotImplementedError
