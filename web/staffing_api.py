"""Supervisor routes for staffing and waiting: ``GET /api/supervisor/staffing`` (Erlang C per lane and
half hour, with the agents logged in now) and ``GET /api/supervisor/kpis`` (KPIs per lane).
Roles are checked server-side on every route."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from aiohttp import web

from counter.appkeys import DB
from counter.staffing import LANES, TARGETS, interval_start, local_zone, staffing_table
from counter.users import Role
from signaling.aio import SIGNALING
from signaling.kpis import CALLBACK_MET_S, SHORT_ABANDON_S, lane_kpis
from signaling.protocol import AgentState
from web.auth import require_role
from web.errors import ApiError
from web.params import MAX_HOURS, query_float

FORECAST_METHOD = "seasonal average of the same weekday and half hour over the last 4 weeks"


async def logged_in(request: web.Request) -> dict[str, int]:
    """Agents present per lane now (any state but away), as routing sees them."""
    counts = dict.fromkeys(LANES, 0)
    for agent in await request.app[SIGNALING].bus.read_agents():
        if agent.role == "agent" and agent.state is not AgentState.AWAY:
            for lane in LANES:
                counts[lane] += lane in agent.skills
    return counts


async def staffing(request: web.Request) -> web.Response:
    """The staffing table for ``date`` (local, default today) and required vs logged-in agents now."""
    require_role(request, Role.SUPERVISOR)
    offset = query_float(request, "utc_offset", 8.0, gt=-13, le=14)
    zone = local_zone(offset)
    now = datetime.now(UTC).astimezone(zone)
    raw = request.query.get("date", "")
    try:
        day = date.fromisoformat(raw) if raw else now.date()
    except ValueError:
        raise ApiError(400, "bad_request", "'date' must be YYYY-MM-DD", field="date") from None
    rows = await staffing_table(request.app[DB], day, offset, now=now,
                                default_handle_s=request.app[SIGNALING].options.default_handle_s)
    present = await logged_in(request)
    current = interval_start(now).isoformat()
    lanes = {
        lane: {"interval": current, "logged_in": present[lane],
               "required": next((r.required for r in rows if r.lane == lane and r.start == current), None),
               "target": {"level": TARGETS[lane].level, "answer_s": TARGETS[lane].answer_s}}
        for lane in LANES
    }
    return web.json_response({"date": day.isoformat(), "utc_offset": offset, "interval_s": 1800,
                              "method": {"staffing": "Erlang C", "forecast": FORECAST_METHOD},
                              "now": lanes, "rows": [r.to_json() for r in rows]})


async def kpis(request: web.Request) -> web.Response:
    """KPIs per lane over the last ``hours``: 15 s / 25 s answer rates, abandonment, ASA, kept places
    and call-backs (:mod:`signaling.kpis`)."""
    require_role(request, Role.SUPERVISOR)
    hours = query_float(request, "hours", 24.0, gt=0, le=MAX_HOURS)
    rows = await lane_kpis(request.app[DB], time.time() - hours * 3600)
    return web.json_response({"hours": hours, "short_abandon_s": SHORT_ABANDON_S,
                              "callback_met_s": CALLBACK_MET_S, "lanes": [r.to_json() for r in rows]})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/supervisor/staffing", staffing)
    app.router.add_get("/api/supervisor/kpis", kpis)
