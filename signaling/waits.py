"""Expected wait per lane and place in the queue, from live data.

Method (M/M/c, the model behind Erlang C): a waiting customer with ``ahead`` calls in front of them
(their place minus one, plus calls of a lane served first by the same agents) and ``free`` agents
about to take a call needs ``n = ahead + 1 - free`` agents to finish a call before theirs is
offered.  With ``c`` agents serving the lane, all busy, each finishing a call at rate ``1 / handle``
(exponential handle times are memoryless, so time already spent in a call does not matter), the
finishes form a Poisson stream of rate ``c / handle`` and the wait is the time to its ``n``-th event:
Gamma(``n``, ``c / handle``).  We show that distribution's **median**: half of the customers told
"about 3 minutes" wait less, half more, and the estimate is as often short as long.  (The mean,
``n * handle / c``, overstates a short wait by up to 44 %: for ``n = 1`` the median is ln 2 of it.)

``handle`` is the lane's mean handle time (talk time of its last 50 answered calls, from the call legs
every node shares, plus the after-call work limit);
``c`` counts agents with the lane's skill who are logged in and not away.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from signaling.bus import LANES
from signaling.protocol import AgentState
from signaling.state import AgentRecord
from storage import Database


def gamma_median(shape: int, rate: float) -> float:
    """Median of Gamma(``shape``, ``rate``) for a whole ``shape`` >= 1 (the Erlang distribution).

    Solved by bisection on the exact CDF ``1 - exp(-x) * sum_{i<k} x^i / i!`` (``x`` = rate x t).
    """
    def below(x: float) -> float:  # P(Poisson(x) < shape) = 1 - CDF
        term, total = 1.0, 1.0
        for i in range(1, shape):
            term *= x / i
            total += term
        return math.exp(-x) * total

    lo, hi = 0.0, float(shape) + 10 * math.sqrt(shape) + 10
    for _ in range(60):
        mid = (lo + hi) / 2
        if below(mid) > 0.5:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2 / rate


@dataclass(frozen=True)
class LaneNow:
    """What routing sees of a lane right now."""

    serving: int  # agents with the lane's skill, logged in and not away
    free: int  # of them, available and not offered a call
    handle_s: float  # mean handle time (talk + after-call work)
    ahead_elsewhere: int = 0  # calls of a lane the same agents serve first (the care lane before general)


def expected_wait_s(place: int, lane: LaneNow) -> float:
    """Median wait in seconds of the customer at ``place`` (1 = next) in ``lane``."""
    needed = place + lane.ahead_elsewhere - lane.free
    if needed <= 0:
        return 0.0
    if lane.serving <= 0:
        # Nobody serving: as if one agent came back; an honest "long", never "now".
        return gamma_median(needed, 1.0 / lane.handle_s)
    return gamma_median(needed, lane.serving / lane.handle_s)


def mean_wait_s(place: int, lane: LaneNow) -> float:
    """The former estimate (``place x handle / serving``), kept for the benchmark's baseline."""
    return place * lane.handle_s / max(1, lane.serving)


def lanes_now(agents: Iterable[AgentRecord], queued: Mapping[str, int], handle_s: Mapping[str, float],
              ) -> dict[str, LaneNow]:
    """Each lane's :class:`LaneNow` from routing's agents and the number of calls queued per lane.

    Routing serves the care lane first, so a general-lane caller also waits behind the care calls
    when the general lane's agents serve the care lane too.
    """
    staff = [a for a in agents if a.role == "agent" and a.state is not AgentState.AWAY]
    out: dict[str, LaneNow] = {}
    for lane in LANES:
        serving = [a for a in staff if lane in a.skills]
        free = sum(1 for a in serving if a.state is AgentState.AVAILABLE and a.call_id is None
                   and a.offer_call is None)
        first = [other for other in LANES[:LANES.index(lane)] if any(other in a.skills for a in serving)]
        out[lane] = LaneNow(len(serving), free, handle_s[lane], sum(queued.get(o, 0) for o in first))
    return out


class HandleTimes:
    """Each lane's mean talk time over its last :attr:`LAST` answered calls of the past day, from the
    call legs (shared by every node), cached for :attr:`CACHE_S`; ``default_s`` before any call."""

    LAST = 50
    CACHE_S = 5.0

    def __init__(self, db: Database, default_s: float) -> None:
        self.db = db
        self.default_s = default_s
        self._cache: dict[str, tuple[float, float]] = {}  # lane -> (when read, mean)

    async def mean_s(self, lane: str, now: float | None = None) -> float:
        now = time.time() if now is None else now
        cached = self._cache.get(lane)
        if cached is not None and now - cached[0] < self.CACHE_S:
            return cached[1]
        rows = await self.db.fetch(
            "SELECT answered_at, ended_at FROM signaling_legs WHERE queued_at >= $1 AND lane = $2"
            f" AND answered_at IS NOT NULL AND ended_at IS NOT NULL ORDER BY queued_at DESC LIMIT {self.LAST}",
            now - 86400, lane,
        )
        talks = [float(r["ended_at"]) - float(r["answered_at"]) for r in rows]
        mean = sum(talks) / len(talks) if talks else self.default_s
        self._cache[lane] = (now, mean)
        return mean
