"""The call's connection figures, kept with the call for the supervisor.

The agent's console measures the call from ``getStats`` (``web/static/shared/linkquality.js``) and
sends a summary now and then: ``POST /api/calls/{call_id}/link`` (only the agent the call is connected
to, while it is); supervisors and auditors read it: ``GET /api/calls/{call_id}/link``.  The figures
are what a browser measured, for the supervisor to read: nothing is decided from them.
"""

from __future__ import annotations

from enum import StrEnum

from aiohttp import web
from pydantic import Field

from counter.appkeys import DB
from counter.users import Role
from storage.timeutil import iso, utcnow
from web.auth import require_role
from web.bodies import StrictBody, parse_body
from web.counter_access import live_call
from web.errors import ApiError


class Level(StrEnum):
    """The indicator's words (``net.good`` ...)."""

    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"


class LinkSummary(StrictBody):
    """The call so far: medians and means over ``samples`` one-second samples."""

    samples: int = Field(ge=1, le=86_400)
    rtt_ms: float = Field(ge=0, le=60_000)
    loss_pct: float = Field(ge=0, le=100)
    up_kbps: float = Field(ge=0, le=1_000_000)
    down_kbps: float = Field(ge=0, le=1_000_000)
    audio_only_s: int = Field(ge=0, le=86_400)
    worst: Level


async def put_link(request: web.Request) -> web.Response:
    session = require_role(request, Role.AGENT, Role.SUPERVISOR)
    call_id = request.match_info["call_id"]
    if len(call_id) > 64:
        raise ApiError(400, "bad_request", "call id too long")
    summary = await parse_body(request, LinkSummary, limit=2048)
    if await live_call(request.app, call_id, session.user.username) is None:
        raise ApiError(409, "not_your_call", "only the agent of a connected call sends its figures")
    await request.app[DB].execute(
        """
        INSERT INTO call_link_stats (call_id, agent, samples, rtt_ms, loss_pct, up_kbps, down_kbps, audio_only_s,
                                     worst, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (call_id) DO UPDATE SET agent = EXCLUDED.agent, samples = EXCLUDED.samples,
            rtt_ms = EXCLUDED.rtt_ms, loss_pct = EXCLUDED.loss_pct, up_kbps = EXCLUDED.up_kbps,
            down_kbps = EXCLUDED.down_kbps, audio_only_s = EXCLUDED.audio_only_s, worst = EXCLUDED.worst,
            updated_at = EXCLUDED.updated_at
        """,
        call_id, session.user.username, summary.samples, summary.rtt_ms, summary.loss_pct, summary.up_kbps,
        summary.down_kbps, summary.audio_only_s, summary.worst.value, iso(utcnow()),
    )
    return web.json_response({"call_id": call_id, **summary.model_dump(mode="json")})


async def get_link(request: web.Request) -> web.Response:
    require_role(request, Role.SUPERVISOR, Role.AUDITOR)
    call_id = request.match_info["call_id"]
    row = await request.app[DB].fetchrow("SELECT * FROM call_link_stats WHERE call_id = $1", call_id)
    if row is None:
        raise ApiError(404, "no_figures", "no figures for this call")
    return web.json_response(row)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/calls/{call_id}/link", put_link)
    app.router.add_get("/api/calls/{call_id}/link", get_link)
