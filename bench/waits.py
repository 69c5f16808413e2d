"""Wait-estimate benchmark: the estimates customers are shown against the waits they then have.

    python bench/waits.py --customers 40000

Simulates one lane (FIFO, ``c`` agents, Poisson arrivals, handle times exponential or log-normal with
the given mean).  Each arriving customer who has to wait is given the estimate the server would send
(:func:`signaling.waits.expected_wait_s` from their place, the free agents and the mean handle time)
and then waits for real in the simulation.  The table compares, per scenario and per place in the
queue, the median estimate with the median realized wait, for the shipped estimate (median of the
Gamma wait) and for the bare baseline the server sent before (``place x handle / agents``).
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import math
import platform
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/signaling.py would shadow the package

from signaling.waits import LaneNow, expected_wait_s, mean_wait_s


@dataclass(frozen=True)
class Waited:
    place: int  # 1 = next in line at arrival
    estimate: float
    baseline: float
    realized: float


def simulate(agents: int, load: float, handle_s: float, customers: int, seed: int,
             handle: str = "exp") -> list[Waited]:
    """The customers who arrived to a full lane (all agents busy), with their estimate and their wait.

    ``load`` is the occupancy (arrival rate x handle / agents).  FIFO: each customer takes the agent
    free soonest, which is exact for a single queue whatever agent serves whom.
    """
    rng = random.Random(seed)
    rate = load * agents / handle_s
    sigma = 0.8  # log-normal spread (coefficient of variation about 0.95)

    def service() -> float:
        if handle == "exp":
            return rng.expovariate(1.0 / handle_s)
        return rng.lognormvariate(math.log(handle_s) - sigma * sigma / 2, sigma)

    free_at = [0.0] * agents  # a min-heap of when each agent is free
    starts: list[float] = []  # the start times of customers not yet started, kept sorted
    t = 0.0
    out = []
    for i in range(customers):
        t += rng.expovariate(rate)
        starts = starts[bisect.bisect_right(starts, t):]
        waiting = len(starts)
        idle = sum(1 for f in free_at if f <= t) if not waiting else 0
        lane = LaneNow(serving=agents, free=idle, handle_s=handle_s)
        soonest = heapq.heappop(free_at)
        start = max(t, soonest)
        heapq.heappush(free_at, start + service())
        bisect.insort(starts, start)
        if i > customers // 10 and start > t:  # after a warm-up; only those who wait
            out.append(Waited(waiting + 1, expected_wait_s(waiting + 1, lane), mean_wait_s(waiting + 1, lane),
                              start - t))
    return out


BUCKETS = [(1, 1), (2, 2), (3, 5), (6, 10**9)]


def compare(rows: list[Waited]) -> list[tuple[str, int, float, float, float]]:
    """Per place bucket (and all): count, median realized, median estimate, median baseline."""
    out = []
    for lo, hi in [*BUCKETS, (1, 10**9)]:
        part = [r for r in rows if lo <= r.place <= hi]
        if not part:
            continue
        name = "all" if (lo, hi) == (1, 10**9) else (str(lo) if lo == hi else f"{lo}+" if hi > 10**6 else f"{lo}-{hi}")
        out.append((name, len(part), statistics.median(r.realized for r in part),
                    statistics.median(r.estimate for r in part), statistics.median(r.baseline for r in part)))
    return out


SCENARIOS = [(1, 0.8, 240.0), (4, 0.85, 300.0), (10, 0.9, 300.0), (30, 0.95, 180.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=40000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.machine()} Python {platform.python_version()}")
    print("| agents | occupancy | handle | place | waited | median realized s | median estimate s | error |"
          " baseline (place x AHT / agents) s | baseline error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for handle in ("exp", "lognormal"):
        for agents, load, aht in SCENARIOS:
            rows = simulate(agents, load, aht, args.customers, args.seed, handle)
            for name, n, real, est, base in compare(rows):
                print(f"| {agents} | {load:.2f} | {handle} {aht:g} s | {name} | {n} | {real:.1f} | {est:.1f} |"
                      f" {est / real - 1:+.1%} | {base:.1f} | {base / real - 1:+.1%} |")


if __name__ == "__main__":
    main()
