"""Connections: one client's socket, its hello (who it is), its frames, extensions and its end.

The web layer accepts the WebSocket, resolves who is on it (the staff cookie), and feeds text frames
to :meth:`Connections.handle`; a customer or helper proves who they are with a token in ``hello``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from signaling import protocol as p
from signaling.core import STAFF_ROLES
from signaling.options import SignalingOptions
from signaling.recovery import Recovery
from signaling.relay import RELAYED, Relay
from signaling.state import AgentRecord, CallStatus, Principal

M = TypeVar("M", bound=BaseModel)


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
        """Send a text frame; a connection found gone is marked closed instead of raising."""
        if self.closed:
            return
        try:
            await self._send(text)
        except (ConnectionError, RuntimeError):
            self.closed = True

    async def close(self) -> None:
        """Close the socket (whatever state it is in) and send nothing more."""
        self.closed = True
        with contextlib.suppress(Exception):
            await self._close()


class Connections(Recovery, Relay):
    """Frames in: limits, hello first, dispatch to the parts; hello and the end of a connection."""

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
            if isinstance(message, RELAYED):
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
            if current is not None and current.status == CallStatus.IN_CALL and current.agent_id == who.id:
                await self._resume_agent(who, current)
        for hook in self.hello_hooks:
            await hook(conn, who)


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
                withdrawn = call.offered_to if call.status == CallStatus.OFFERED else None
                if withdrawn:
                    await self._withdraw(call, "customer_lost")
                await self.bus.put_call(call)
            if call.status == CallStatus.IN_CALL and call.agent_id:
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
                    offered.status = CallStatus.QUEUED
                    await self.bus.put_call(offered)
            if agent is not None and agent.call_id:
                call = await self.bus.get_call(agent.call_id)
                if call is not None and call.agent_id == who.id:
                    await self._requeue_head(call, "agent_lost", who)
        await self._kick()

