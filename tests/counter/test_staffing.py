"""Erlang C against published worked examples; the forecast against history with a known weekly pattern.

Worked examples (inputs as published; results to 3 decimals):

* Westbay Engineers, "The Erlang-C formula" (http://www.westbay.ndirect.co.uk/erlang.htm, also quoted
  on erlang.com): 360 calls per half hour, 4-minute calls, 55 agents, 15 s target: traffic 48 Erlangs,
  occupancy 0.873, probability of waiting 0.239, ASA 8.18 s (0.1364 min), service level 0.846.
* Call Centre Helper, "Erlang C Formula - Made Simple With an Easy Worked Example"
  (https://www.callcentrehelper.com/erlang-c-formula-example-121281.htm): 100 calls in 30 minutes,
  AHT 180 s, target 80 % in 20 s: 10 Erlangs; with the raw 11 agents P(wait) 0.682 and service level
  0.390; 14 agents are needed (service level 0.888, occupancy 0.714, ASA 7.8 s).
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from counter.staffing import (
    Target,
    agents_needed,
    average_speed_of_answer,
    erlang_c,
    forecast,
    load_history,
    local_zone,
    service_level,
    staffing_table,
)
from storage import Database


def test_westbay_worked_example() -> None:
    traffic = 360 * 240 / 1800
    assert traffic == 48
    assert round(erlang_c(55, traffic), 3) == 0.239
    assert round(average_speed_of_answer(55, traffic, 240), 2) == 8.18
    assert round(service_level(55, traffic, 240, 15), 3) == 0.846
    assert round(traffic / 55, 3) == 0.873


def test_call_centre_helper_worked_example() -> None:
    assert round(erlang_c(11, 10.0), 3) == 0.682
    assert round(service_level(11, 10.0, 180, 20), 3) == 0.390
    assert round(service_level(13, 10.0, 180, 20), 3) == 0.796  # one short of the target
    need = agents_needed(100, 180, Target(answer_s=20, level=0.8))
    assert need.agents == 14
    assert round(need.service_level, 3) == 0.888
    assert round(need.occupancy, 3) == 0.714
    assert round(need.asa_s, 1) == 7.8


def test_edges() -> None:
    assert erlang_c(5, 0.0) == 0.0 and erlang_c(5, 5.0) == 1.0
    assert agents_needed(0, 300, Target()).agents == 0
    assert agents_needed(1, 300, Target()).agents >= 1
    # A big centre: the recursion does not overflow where factorials would.
    assert agents_needed(6000, 300, Target()).agents > 1000


# a known weekly pattern: calls per half hour by weekday (Mon=0) at 09:00 and 14:30 local
PATTERN = {(0, "09:00"): 40, (0, "14:30"): 12, (1, "09:00"): 8, (1, "14:30"): 30, (2, "09:00"): 20}
TALK_S = 200.0


async def _generate(db: Database, weeks: int, start: date, noise: bool) -> None:
    """``weeks`` weeks of legs before ``start`` following PATTERN (Poisson-like noise if ``noise``)."""
    zone = local_zone(8)
    rng = random.Random(20)
    rows = []
    n = 0
    for back in range(1, weeks * 7 + 1):
        day = start - timedelta(days=back)
        for (weekday, hhmm), calls in PATTERN.items():
            if day.weekday() != weekday:
                continue
            count = max(0, round(rng.gauss(calls, calls ** 0.5))) if noise else calls
            slot = datetime(day.year, day.month, day.day, int(hhmm[:2]), int(hhmm[3:]), tzinfo=zone).timestamp()
            for i in range(count):
                queued = slot + i * (1800 / max(count, 1))
                n += 1
                rows.append((f"c{n}", "general", queued, queued + 5, queued + 5 + TALK_S, "agent1", "hangup"))
    await db.executemany(
        "INSERT INTO signaling_legs (call_id, lane, queued_at, answered_at, ended_at, agent, outcome)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)", rows,
    )


async def test_forecast_follows_the_weekly_pattern(db: Database) -> None:
    monday = date(2026, 11, 30)
    await _generate(db, 4, monday + timedelta(days=7), noise=False)  # the 4 weeks before next Monday
    zone = local_zone(8)
    history = await load_history(db, datetime(2026, 11, 1, tzinfo=zone), datetime(2026, 12, 8, tzinfo=zone), zone)
    for (weekday, hhmm), calls in PATTERN.items():
        day = monday + timedelta(days=7 + weekday)
        start = datetime(day.year, day.month, day.day, int(hhmm[:2]), int(hhmm[3:]), tzinfo=zone)
        fc = forecast(history, "general", start)
        assert (fc.calls, fc.weeks) == (calls, 4), (weekday, hhmm)
        assert fc.handle_s == pytest.approx(TALK_S)
    # A quiet slot of a live day forecasts zero; Tuesday 09:00 is not Monday 09:00.
    tuesday = datetime(2026, 12, 8, 10, 0, tzinfo=zone)
    assert forecast(history, "general", tuesday).calls == 0


async def test_forecast_with_noise_and_the_table(db: Database) -> None:
    monday = date(2026, 12, 7)
    await _generate(db, 4, monday, noise=True)
    rows = await staffing_table(db, monday, now=datetime(2026, 12, 1, tzinfo=local_zone(8)))
    by = {(r.lane, r.start[11:16]): r for r in rows}
    nine = by[("general", "09:00")]
    assert nine.actual_calls is None and nine.forecast_weeks == 4
    assert abs(nine.forecast_calls - 40) <= 40 * 0.2  # the average of four noisy Mondays
    assert nine.required == agents_needed(nine.forecast_calls, nine.handle_s, Target(15, 0.8)).agents
    assert nine.required > by[("general", "14:30")].required > 0
    assert by[("general", "10:00")].required == 0 and by[("care", "09:00")].required == 0
    assert nine.occupancy == pytest.approx(nine.traffic / nine.required, abs=1e-3)


def test_cli_prints_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from counter.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COUNTER_DATA_DIR", str(tmp_path / "data"))
    assert main(["staffing", "--date", "2026-12-07"]) == 0
    out = capsys.readouterr().out
    assert "staffing for 2026-12-07 (UTC+8)" in out and "need" in out
    assert main(["staffing", "--date", "2026-12-07", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rows"]) == 96
    assert main(["staffing", "--date", "07.12.2026"]) == 2
