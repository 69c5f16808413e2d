"""Staffing per lane and half hour: Erlang C, and a forecast from the same weekday's history.

Erlang C (M/M/N: Poisson arrivals, exponential handle times, callers wait in one FIFO queue):
with ``A = calls x handle / interval`` Erlangs offered to ``N`` agents,

* ``P(wait) = C(N, A)``, computed through the Erlang B recursion (no factorials to overflow);
* ``service level = 1 - C(N, A) * exp(-(N - A) * target / handle)`` (share answered within ``target``);
* ``ASA = C(N, A) * handle / (N - A)`` (average speed of answer);
* ``occupancy = A / N``.

The agents needed are the fewest ``N > A`` whose service level meets the lane's target.

Forecast method: a *seasonal average over weeks* — the next intervals' calls and handle time are the
mean of the same weekday and the same half hour over the last :data:`WEEKS` weeks that had data in
that slot's week (weeks with no calls at all, such as before the service started, are left out).
It follows a weekly pattern exactly and damps week-to-week noise by averaging; it does not follow a
trend (a rising volume is under-forecast by half the rise over the window).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from storage import Database

INTERVAL_S = 1800
#: Weeks of history the forecast averages.
WEEKS = 4
LANES = ("care", "general")
#: Handle time (seconds) assumed where an interval has no answered call to measure.
DEFAULT_HANDLE_S = 300.0
#: China Standard Time: the service's half hours are local half hours.
DEFAULT_UTC_OFFSET_H = 8.0


@dataclass(frozen=True)
class Target:
    """A service-level target: ``level`` of the calls answered within ``answer_s`` seconds."""

    answer_s: float = 15.0
    level: float = 0.8


#: Each lane's target: 80 % in 15 s; the care lane (65+, assisted) answers faster: 90 % in 15 s.
TARGETS: dict[str, Target] = {"general": Target(15.0, 0.8), "care": Target(15.0, 0.9)}


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a call waits, for ``traffic`` Erlangs offered to ``agents`` (1.0 if overloaded)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = 1.0  # Erlang B with 0 servers
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return agents * b / (agents - traffic * (1 - b))


def service_level(agents: int, traffic: float, handle_s: float, target_s: float) -> float:
    """Share of calls answered within ``target_s`` seconds (0.0 if the agents cannot keep up)."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * target_s / handle_s)


def average_speed_of_answer(agents: int, traffic: float, handle_s: float) -> float:
    """Mean wait in seconds over all calls (``inf`` if the agents cannot keep up)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * handle_s / (agents - traffic)


@dataclass(frozen=True)
class Staffing:
    """What Erlang C says for one interval."""

    calls: float
    handle_s: float
    traffic: float  # Erlangs
    agents: int
    service_level: float
    asa_s: float
    occupancy: float


def agents_needed(calls: float, handle_s: float, target: Target, interval_s: float = INTERVAL_S) -> Staffing:
    """The fewest agents meeting ``target`` for ``calls`` arriving in ``interval_s`` seconds."""
    traffic = calls * handle_s / interval_s
    if traffic <= 0:
        return Staffing(calls, handle_s, 0.0, 0, 1.0, 0.0, 0.0)
    n = max(1, math.floor(traffic) + 1)
    while service_level(n, traffic, handle_s, target.answer_s) < target.level:
        n += 1
    return Staffing(calls, handle_s, traffic, n, service_level(n, traffic, handle_s, target.answer_s),
                    average_speed_of_answer(n, traffic, handle_s), traffic / n)


# history and forecast -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """What happened in one lane's half hour: arrivals, and the talk times of its answered calls."""

    calls: int
    handle_total_s: float
    answered: int


History = dict[tuple[str, datetime], Slot]  # (lane, interval start, aware local time) -> slot


def local_zone(utc_offset_h: float) -> timezone:
    return timezone(timedelta(hours=utc_offset_h))


def interval_start(moment: datetime) -> datetime:
    """The start of the half hour ``moment`` falls in (same zone)."""
    return moment.replace(minute=30 if moment.minute >= 30 else 0, second=0, microsecond=0)


async def load_history(db: Database, since: datetime, until: datetime, zone: timezone) -> History:
    """Arrivals (distinct calls) and talk times per lane and local half hour, from the call legs."""
    rows = await db.fetch(
        "SELECT call_id, lane, queued_at, answered_at, ended_at FROM signaling_legs"
        " WHERE queued_at >= $1 AND queued_at < $2",
        since.timestamp(), until.timestamp(),
    )
    seen: dict[tuple[str, datetime], set[str]] = defaultdict(set)
    talk: dict[tuple[str, datetime], list[float]] = defaultdict(list)
    for r in rows:
        key = (str(r["lane"]), interval_start(datetime.fromtimestamp(float(r["queued_at"]), zone)))
        seen[key].add(str(r["call_id"]))
        if r["answered_at"] is not None and r["ended_at"] is not None:
            talk[key].append(float(r["ended_at"]) - float(r["answered_at"]))
    return {key: Slot(len(ids), sum(talk[key]), len(talk[key])) for key, ids in seen.items()}


@dataclass(frozen=True)
class Forecast:
    calls: float
    handle_s: float | None
    weeks: int  # how many past weeks the average used


def forecast(history: History, lane: str, start: datetime, weeks: int = WEEKS) -> Forecast:
    """The seasonal average over weeks for ``lane``'s half hour starting at ``start`` (see the module doc).

    A past week counts if it had any call that weekday (in any slot); a quiet slot in a live week
    counts as zero calls.
    """
    live_days = {(when.date()) for (_, when) in history}
    counts: list[int] = []
    talk_total, answered = 0.0, 0
    for k in range(1, weeks + 1):
        then = start - timedelta(days=7 * k)
        if then.date() not in live_days:
            continue
        slot = history.get((lane, then), Slot(0, 0.0, 0))
        counts.append(slot.calls)
        talk_total += slot.handle_total_s
        answered += slot.answered
    if not counts:
        return Forecast(0.0, None, 0)
    return Forecast(sum(counts) / len(counts), talk_total / answered if answered else None, len(counts))


@dataclass(frozen=True)
class Row:
    """One line of the staffing table."""

    lane: str
    start: str  # local ISO time of the interval start
    actual_calls: int | None  # None: the interval has not ended
    forecast_calls: float
    forecast_weeks: int
    handle_s: float
    traffic: float
    required: int
    service_level: float
    asa_s: float
    occupancy: float
    target: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def staffing_table(
    db: Database, day: date, utc_offset_h: float = DEFAULT_UTC_OFFSET_H, now: datetime | None = None,
    default_handle_s: float = DEFAULT_HANDLE_S, targets: dict[str, Target] | None = None,
) -> list[Row]:
    """Required agents per lane and half hour of ``day`` (local): from the interval's own arrivals and
    handle time once it has ended, from the forecast before."""
    zone = local_zone(utc_offset_h)
    now = (now or datetime.now(UTC)).astimezone(zone)
    first = datetime(day.year, day.month, day.day, tzinfo=zone)
    history = await load_history(db, first - timedelta(days=7 * WEEKS), first + timedelta(days=1), zone)
    targets = targets or TARGETS
    rows = []
    for lane in LANES:
        target = targets[lane]
        for i in range(86400 // INTERVAL_S):
            start = first + timedelta(seconds=i * INTERVAL_S)
            fc = forecast(history, lane, start)
            ended = start + timedelta(seconds=INTERVAL_S) <= now
            slot = history.get((lane, start), Slot(0, 0.0, 0))
            if ended:
                calls: float = slot.calls
                handle = slot.handle_total_s / slot.answered if slot.answered else fc.handle_s
            else:
                calls, handle = fc.calls, fc.handle_s
            s = agents_needed(calls, handle or default_handle_s, target)
            rows.append(Row(lane, start.isoformat(), slot.calls if ended else None, round(fc.calls, 2),
                            fc.weeks, round(s.handle_s, 1), round(s.traffic, 3), s.agents,
                            round(s.service_level, 4), round(s.asa_s, 1), round(s.occupancy, 4),
                            f"{target.level:.0%} in {target.answer_s:g} s"))
    return rows


def format_table(rows: list[Row], logged_in: dict[str, int] | None = None) -> str:
    """The table as the CLI prints it (only intervals with calls, actual or forecast)."""
    lines = [f"{'lane':8} {'start':5} {'calls':>6} {'fcst':>6} {'AHT s':>6} {'Erl':>6} {'need':>4} "
             f"{'SL':>6} {'ASA s':>6} {'occ':>5}"]
    for r in rows:
        if not r.actual_calls and not r.forecast_calls:
            continue
        actual = "-" if r.actual_calls is None else str(r.actual_calls)
        lines.append(f"{r.lane:8} {r.start[11:16]:5} {actual:>6} {r.forecast_calls:>6.1f} {r.handle_s:>6.0f} "
                     f"{r.traffic:>6.2f} {r.required:>4} {r.service_level:>6.1%} {r.asa_s:>6.1f} "
                     f"{r.occupancy:>5.0%}")
    if len(lines) == 1:
        lines.append("(no calls and no history for this date)")
    for lane, n in (logged_in or {}).items():
        lines.append(f"logged in now, {lane}: {n}")
    return "\n".join(lines)
