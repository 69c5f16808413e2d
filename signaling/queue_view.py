"""What the waiting and the supervisors' wall are shown: positions, wait estimates, the live snapshot."""

from __future__ import annotations

import time

from signaling import protocol as p
from signaling.bus import LANES
from signaling.core import ServiceCore
from signaling.protocol import AgentState
from signaling.state import CallStatus, customer_key
from signaling.waits import LaneNow, expected_wait_s, lanes_now


class QueueView(ServiceCore):
    """Queue status pushed to customers, the lanes' wait estimates, and the supervisor wall's snapshot."""

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
            for c in await self.bus.calls() if c.status == CallStatus.IN_CALL
        ]
        return {"node": self.node_id, "lanes": lanes, "agents": agents, "calls": calls, "expected_wait_s": expected}
