"""Routing: the two-lane queue, offers to free agents, and what ends, moves or hands on a call.

Every change here is taken under ``bus.lock()`` (methods marked "Caller holds the lock" expect it held).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from signaling import protocol as p
from signaling.bus import LANES
from signaling.presence import AgentStates
from signaling.protocol import AgentState
from signaling.queue_view import QueueView
from signaling.state import AgentRecord, CallRecord, CallStatus, Principal, customer_key

if TYPE_CHECKING:
    from signaling.connections import Connection

#: From this age (from the account, or the customer's own) a caller is served in the care lane.
CARE_AGE = 65


class Routing(AgentStates, QueueView):
    """The queue and routing: join, offers and their answers, transfer, requeue, hang-up and the call's end."""

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
                if call is None or call.status != CallStatus.QUEUED:
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
                call.status = CallStatus.OFFERED
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
        call.status = CallStatus.QUEUED
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
        outcome = "abandoned" if call.status != CallStatus.IN_CALL else reason
        if call.leg is not None:
            await self.store.close_leg(call.leg, outcome, now)
        if call.status == CallStatus.OFFERED and call.offered_to:
            await self._withdraw(call, reason)
        by_key = by.key if by else None
        ended = p.CallEnded(call_id=call.call_id, reason=reason, by=by_key)
        await self._to(customer_key(call.call_id), ended)
        if call.status == CallStatus.IN_CALL and call.agent_id:
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
        call.status = CallStatus.QUEUED
        if agent_id is None:
            return
        agent = await self.bus.get_agent(agent_id)
        if agent is not None and agent.offer_call == call.call_id:
            agent.offer_call = None
            await self._to(f"{agent.role}:{agent_id}", p.OfferWithdrawn(call_id=call.call_id, reason=reason))
            await self._enter(agent, AgentState.AVAILABLE, time.time())


    async def _offer_timed_out(self, call: CallRecord) -> None:
        agent_id = call.offered_to
        call.offered_to = None
        call.status = CallStatus.QUEUED
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


    async def _accept(self, who: Principal, m: p.Accept) -> None:
        async with self.bus.lock():
            call = await self.bus.get_call(m.call_id)
            if call is None or call.status != CallStatus.OFFERED or call.offered_to != who.id:
                raise p.ProtocolError("offer_gone", "this call is no longer offered to you", m.ref)
            now = time.time()
            call.status = CallStatus.IN_CALL
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
            call.status = CallStatus.QUEUED
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
            if call is None or call.agent_id != who.id or call.status != CallStatus.IN_CALL:
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
            if call is None or call.status != CallStatus.IN_CALL or call.agent_id is None:
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

