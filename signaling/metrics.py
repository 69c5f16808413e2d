"""Contact-centre KPIs per lane, from the call legs: service level, abandonment, wait, handle time."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from storage import Database

ANSWER_TARGET_S = 15.0


@dataclass(frozen=True)
class LaneMetrics:
    """One lane over a period.  Rates are fractions of the calls that ended waiting (answered or not)."""

    lane: str
    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    waiting: int
    service_level: float | None
    abandon_rate: float | None
    avg_wait_s: float | None
    avg_handle_s: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _avg(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


async def lane_metrics(
    db: Database, since: float | None = None, target_s: float = ANSWER_TARGET_S, now: float | None = None
) -> list[LaneMetrics]:
    """KPIs per lane for legs queued since ``since`` (unix time; default the last 24 hours)."""
    now = time.time() if now is None else now
    since = now - 86400 if since is None else since
    rows = await db.fetch(
        "SELECT lane, queued_at, answered_at, ended_at, outcome FROM signaling_legs WHERE queued_at >= $1",
        since,
    )
    out = []
    for lane in ("care", "general"):
        legs = [r for r in rows if r["lane"] == lane]
        answered = [r for r in legs if r["answered_at"] is not None]
        abandoned = [r for r in legs if r["answered_at"] is None and r["outcome"] == "abandoned"]
        waiting = [r for r in legs if r["answered_at"] is None and r["ended_at"] is None]
        within = [r for r in answered if float(r["answered_at"]) - float(r["queued_at"]) <= target_s]
        decided = len(answered) + len(abandoned)
        waits = [float(r["answered_at"]) - float(r["queued_at"]) for r in answered]
        handles = [float(r["ended_at"]) - float(r["answered_at"]) for r in answered if r["ended_at"] is not None]
        out.append(
            LaneMetrics(
                lane=lane,
                offered=len(legs),
                answered=len(answered),
                answered_within_target=len(within),
                abandoned=len(abandoned),
                waiting=len(waiting),
                service_level=round(len(within) / decided, 4) if decided else None,
                abandon_rate=round(len(abandoned) / decided, 4) if decided else None,
                avg_wait_s=_avg(waits),
                avg_handle_s=_avg(handles),
            )
        )
    return out
