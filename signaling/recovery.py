"""Recovery: a node's start and stop, the timer's pass, parties coming back, and outages of the shared state.

A restart changes no call: persisted calls are put back (:meth:`Recovery._restore`) and the parties
resume them when they say hello again.  The timer (:meth:`Recovery.tick`) finds what nobody said:
nodes gone silent, customers gone too long, offers not answered, agents not back after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from signaling import protocol as p
from signaling.core import STAFF_ROLES
from signaling.protocol import AgentState
from signaling.routing import Routing
from signaling.state import AgentRecord, CallRecord, CallStatus, Principal, customer_key

log = logging.getLogger("signaling")


class Recovery(Routing):
    """Start, stop, restore, resume, the timer's sweeps and recovery after an outage."""

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
                if call.status == CallStatus.IN_CALL and call.agent_id:
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
                call.status = CallStatus.QUEUED
                call.offered_to = None
                call.agent_id = call.agent_name = None
                await self.bus.enqueue(call)
        if saved:
            log.info("signaling: %d persisted calls restored (%d connected, waiting for both parties)",
                     len(saved), connected)


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
        if current.status == CallStatus.IN_CALL and current.agent_id:
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
        if call.status == CallStatus.OFFERED and call.offered_to:
            await self._withdraw(call, "customer_lost")
        await self.bus.put_call(call)
        if call.status == CallStatus.IN_CALL and call.agent_id:
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
                if call.status == CallStatus.IN_CALL and call.agent_id:
                    in_call[call.agent_id] = call.call_id
                    await self.bus.put_call(call)
                else:
                    call.status = CallStatus.QUEUED
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
                if (c.status == CallStatus.OFFERED and c.offer_deadline < now)
                or self._gone(c, now)
                or (c.status == CallStatus.IN_CALL and c.agent_id not in present)
            ]
            for call_id in due:
                call = await self.bus.get_call(call_id)
                if call is None:
                    continue
                if call.status == CallStatus.OFFERED and call.offer_deadline < now:
                    await self._offer_timed_out(call)
                elif self._gone(call, now):
                    await self._end_call(call, "customer_lost" if call.status == CallStatus.IN_CALL else
                                         "abandoned" if call.kept_until is None else "place_released", None)
                elif call.status == CallStatus.IN_CALL and call.agent_id not in present:
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
        if call.kept_until is not None and call.status == CallStatus.QUEUED:
            return now > call.kept_until
        return now - call.disconnected_at > self.options.reconnect_grace_s

