"""KPIs per lane as the operators' centres report them, from the call legs and the waiting tables.

* answered within 15 s and within 25 s (shares of the calls that ended waiting: answered or abandoned
  after the short-abandon threshold);
* abandonment, split at :data:`SHORT_ABANDON_S`: callers who hang up within it (misdials, changed
  minds) are reported but not counted against the service level or the abandon rate;
* average speed of answer (mean wait of answered calls);
* kept places (virtual hold): chosen, kept (the customer came back in time) and released; scheduled
  call-backs: booked, met (started within :data:`CALLBACK_MET_S` of the preferred time) and done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from storage import Database

SHORT_ABANDON_S = 5.0
ANSWER_TARGETS_S = (15.0, 25.0)
#: A scheduled call-back is met if an agent starts it within this many seconds of the preferred time.
CALLBACK_MET_S = 600.0


@dataclass(frozen=True)
class LaneKpis:
    lane: str
    offered: int
    answered: int
    answered_15s: int
    answered_25s: int
    service_level_15s: float | None
    service_level_25s: float | None
    abandoned_short: int  # within SHORT_ABANDON_S
    abandoned: int  # after it
    abandon_rate: float | None
    asa_s: float | None
    places_kept: int  # virtual holds chosen
    places_returned: int  # ... whose customer came back in time
    places_released: int
    callbacks: int
    callbacks_met: int
    callbacks_done: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def lane_kpis(db: Database, since: float, lanes: tuple[str, ...] = ("care", "general")) -> list[LaneKpis]:
    """KPIs per lane for calls queued (places kept, call-backs booked) since ``since`` (unix seconds)."""
    legs = await db.fetch(
        "SELECT lane, queued_at, answered_at, ended_at, outcome FROM signaling_legs WHERE queued_at >= $1", since
    )
    holds = await db.fetch("SELECT lane, status FROM waiting_holds WHERE created_at >= $1", since)
    callbacks = await db.fetch(
        "SELECT lane, status, preferred_at, started_at FROM waiting_callbacks WHERE created_at >= $1", since
    )
    out = []
    for lane in lanes:
        mine = [r for r in legs if r["lane"] == lane]
        waits = [float(r["answered_at"]) - float(r["queued_at"]) for r in mine if r["answered_at"] is not None]
        gone = [float(r["ended_at"]) - float(r["queued_at"]) for r in mine
                if r["answered_at"] is None and r["outcome"] == "abandoned" and r["ended_at"] is not None]
        short = sum(1 for w in gone if w <= SHORT_ABANDON_S)
        decided = len(waits) + len(gone) - short
        within = [sum(1 for w in waits if w <= t) for t in ANSWER_TARGETS_S]
        kept = [r for r in holds if r["lane"] == lane]
        booked = [r for r in callbacks if r["lane"] == lane]
        met = [r for r in booked if r["started_at"] is not None
               and float(r["started_at"]) <= float(r["preferred_at"]) + CALLBACK_MET_S]
        out.append(LaneKpis(
            lane=lane, offered=len(mine), answered=len(waits), answered_15s=within[0], answered_25s=within[1],
            service_level_15s=_share(within[0], decided), service_level_25s=_share(within[1], decided),
            abandoned_short=short, abandoned=len(gone) - short, abandon_rate=_share(len(gone) - short, decided),
            asa_s=round(sum(waits) / len(waits), 1) if waits else None,
            places_kept=len(kept), places_returned=sum(1 for r in kept if r["status"] == "returned"),
            places_released=sum(1 for r in kept if r["status"] == "released"),
            callbacks=len(booked), callbacks_met=len(met),
            callbacks_done=sum(1 for r in booked if r["status"] == "done"),
        ))
    return out
