"""Staff members' states as routing keeps them: the one place states change, and what staff choose.

An ACD's states (:class:`~signaling.protocol.AgentState`): ``available`` -> ``offered`` -> ``in_call``
-> ``wrap_up`` -> ``available``; ``away`` until they choose otherwise.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from signaling import protocol as p
from signaling.core import ServiceCore
from signaling.protocol import AgentState
from signaling.state import AgentRecord, CallStatus, Principal

if TYPE_CHECKING:
    from signaling.connections import Connection


class AgentStates(ServiceCore):
    """Agents' states: entering one, telling the console, wrap-up's end, and the ``presence`` message."""

    def _status(self, agent: AgentRecord, kind: type[p.PresenceAck] | type[p.AgentStatus], now: float,
                ref: str | None = None) -> p.PresenceAck | p.AgentStatus:
        """``agent``'s state as their console is told it (``presence_ack`` or ``agent_state``)."""
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
                    offered.status = CallStatus.QUEUED
                    await self.bus.put_call(offered)
            if wanted is AgentState.AVAILABLE and agent.offer_call:
                wanted = AgentState.OFFERED
            await self._enter(agent, wanted, now, tell=False)  # wrap-up again: extended from now
        await conn.send(p.dump(self._status(agent, p.PresenceAck, now, m.ref)))
        await self._kick()

