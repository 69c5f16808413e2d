"""KPIs per lane from known legs, kept places and call-backs, on both back-ends."""

from __future__ import annotations

import time

import pytest

from signaling.kpis import lane_kpis
from storage import Database


async def test_answer_rates_abandonment_asa_and_callbacks(db: Database) -> None:
    t = time.time() - 600
    # general: answered after 10, 20 and 40 s; abandoned after 3 s (short) and 60 s; one still waiting
    legs = [("a", 10.0, "hangup"), ("b", 20.0, "hangup"), ("c", 40.0, "hangup"),
            ("d", None, "abandoned", 3.0), ("e", None, "abandoned", 60.0), ("f", None, None)]
    for row in legs:
        call, wait, outcome = row[0], row[1], row[2]
        answered = t + wait if wait is not None else None
        ended = t + (wait or 0) + 100 if wait is not None else (t + row[3] if len(row) > 3 else None)
        await db.execute(
            "INSERT INTO signaling_legs (call_id, lane, queued_at, answered_at, ended_at, outcome)"
            " VALUES ($1, 'general', $2, $3, $4, $5)", call, t, answered, ended, outcome)
    await db.execute("INSERT INTO signaling_legs (call_id, lane, queued_at, answered_at, ended_at, outcome)"
                     " VALUES ('g', 'care', $1, $2, $3, 'hangup')", t, t + 5, t + 50)
    for call, status in (("a", "returned"), ("e", "released"), ("f", "holding")):
        await db.execute("INSERT INTO waiting_holds (call_id, lane, msisdn, code_hash, status, created_at)"
                         " VALUES ($1, 'general', '13800138000', $2, $3, $4)", call, "h" + call, status, t)
    for started, status in ((t + 100, "done"), (t + 4000, "done"), (None, "scheduled")):
        await db.execute("INSERT INTO waiting_callbacks (lane, msisdn, preferred_at, status, created_at, started_at,"
                         " history) VALUES ('general', '13800138000', $1, $2, $3, $4, '[]')", t, status, t, started)
    general, care = {k.lane: k for k in await lane_kpis(db, t - 1)}["general"], (await lane_kpis(db, t - 1))[0]
    assert (general.offered, general.answered, general.answered_15s, general.answered_25s) == (6, 3, 1, 2)
    assert (general.abandoned_short, general.abandoned) == (1, 1)
    assert general.service_level_15s == pytest.approx(1 / 4) and general.service_level_25s == pytest.approx(2 / 4)
    assert general.abandon_rate == pytest.approx(1 / 4)
    assert general.asa_s == pytest.approx(70 / 3, abs=0.05)
    assert (general.places_kept, general.places_returned, general.places_released) == (3, 1, 1)
    assert (general.callbacks, general.callbacks_met, general.callbacks_done) == (3, 1, 2)
    assert care.lane == "care" and care.service_level_15s == 1.0 and care.places_kept == 0
