"""Small API glue for the staff consoles: the login page, the agents' view of the queue, wrap-up
codes and the supervisor's counter KPIs (first-contact resolution, satisfaction, handle time).

The call KPIs (service level, abandonment, waits) come from ``/api/supervisor/metrics``; the ones
here come from the counter sessions.  Roles are checked server-side on every route.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from aiohttp import web

from counter.appkeys import DB, ENGINE, SESSIONS
from counter.audit import AUDIT, AuditEvent
from counter.sessions import SessionNotFound
from counter.users import Role
from signaling.aio import SIGNALING
from storage.timeutil import iso, parse_iso, utcnow
from web.auth import current_session, require_role
from web.errors import ApiError
from web.pages import page_response
from web.params import MAX_HOURS, query_float

#: Wrap-up codes the agent picks when closing a session; ``resolved`` counts as first-contact resolution.
WRAP_UPS: list[dict[str, str]] = [
    {"code": "resolved", "zh": "已解决", "en": "Resolved"},
    {"code": "work_order", "zh": "已派工单", "en": "Work order opened"},
    {"code": "transferred", "zh": "已转接", "en": "Transferred"},
    {"code": "identity_failed", "zh": "身份核验未通过", "en": "Identity not proven"},
    {"code": "customer_left", "zh": "客户离开", "en": "Customer left"},
    {"code": "info_only", "zh": "仅咨询", "en": "Information only"},
    {"code": "not_recorded", "zh": "未填小结（话后时间到）", "en": "Not recorded (wrap-up time ran out)"},
]
FIRST_CONTACT = {"resolved", "info_only"}
#: Where each role lands after logging in.
HOME = {Role.AGENT: "/agent", Role.SUPERVISOR: "/supervisor", Role.AUDITOR: "/auditor", Role.ADMIN: "/"}


async def login_page(request: web.Request) -> web.StreamResponse:
    """The login form; a visitor who is logged in already goes to their console."""
    session = current_session(request)
    if session is not None and "again" not in request.query:
        raise web.HTTPFound(HOME[session.user.role])
    return page_response("login")


async def home(request: web.Request) -> web.Response:
    """Where the logged-in user's console is."""
    session = require_role(request)
    return web.json_response({"role": session.user.role.value, "home": HOME[session.user.role]})


async def wrap_ups(request: web.Request) -> web.Response:
    require_role(request, Role.AGENT, Role.SUPERVISOR)
    return web.json_response({"wrap_ups": WRAP_UPS})


async def agent_queue(request: web.Request) -> web.Response:
    """The lanes as an agent sees them: position, waiting time, lane; no other agents' details."""
    require_role(request, Role.AGENT, Role.SUPERVISOR)
    snap = await request.app[SIGNALING].snapshot()
    lanes: dict[str, Any] = snap["lanes"]  # type: ignore[assignment]
    out = {
        lane: [{"position": r["position"], "waited_s": r["waited_s"], "status": r["status"]} for r in rows]
        for lane, rows in lanes.items()
    }
    return web.json_response({"lanes": out, "at": time.time()})


def _hours(request: web.Request) -> float:
    return query_float(request, "hours", 24.0, gt=0, le=MAX_HOURS)


async def counter_kpis(request: web.Request) -> web.Response:
    """Counter-session KPIs over the last ``hours``: per-hour handled counts for the wall's charts."""
    require_role(request, Role.SUPERVISOR)
    hours = _hours(request)
    now = utcnow()
    since = iso(now - timedelta(hours=hours))
    rows = await request.app[DB].fetch(
        "SELECT agent, wrap_up, rating, created_at, closed_at FROM counter_sessions WHERE created_at >= $1",
        since,
    )
    closed = [r for r in rows if r["closed_at"]]
    handles = [(parse_iso(r["closed_at"]) - parse_iso(r["created_at"])).total_seconds() for r in closed]
    ratings = [int(r["rating"]) for r in rows if r["rating"] is not None]
    first = [r for r in closed if r["wrap_up"] in FIRST_CONTACT]
    buckets = min(int(hours), 24) or 1
    per_hour = [0] * buckets
    for r in rows:
        ago = (now - parse_iso(r["created_at"])).total_seconds() / 3600
        if ago < buckets:
            per_hour[buckets - 1 - int(ago)] += 1
    by_agent: dict[str, int] = {}
    for r in closed:
        by_agent[r["agent"]] = by_agent.get(r["agent"], 0) + 1
    return web.json_response({
        "hours": hours,
        "sessions": len(rows),
        "closed": len(closed),
        "first_contact_resolution": round(len(first) / len(closed), 4) if closed else None,
        "avg_handle_s": round(sum(handles) / len(handles), 1) if handles else None,
        "satisfaction": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "ratings": len(ratings),
        "rating_counts": [ratings.count(n) for n in range(1, 6)],
        "sessions_per_hour": per_hour,
        "closed_by_agent": by_agent,
    })


async def session_record(request: web.Request) -> web.Response:
    """A counter session's record for the auditor's timeline (consent, evidence, rating, wrap-up, notes).

    It names the account, so the view is audited (``auditor.view_session``) before it is shown.
    """
    user = require_role(request, Role.AUDITOR).user
    sid = request.match_info["sid"]
    try:
        session = await request.app[SESSIONS].get(sid)
    except SessionNotFound as exc:
        raise ApiError(404, "no_session", str(exc)) from exc
    viewed = await request.app[AUDIT].append(
        AuditEvent("auditor.view_session", "auditor", user.username, session_id=sid, account=session.account)
    )
    history = await request.app[ENGINE].history(sid)
    return web.json_response({
        "id": session.id,
        "agent": session.agent,
        "account": session.account,
        "face_consent": session.face_consent,
        "level": str(session.level),
        "evidence": [
            {"level": str(e.level), "method": e.method, "evidence": list(e.evidence), "subject": e.subject,
             "recorded_by": e.recorded_by, "at": e.at}
            for e in session.evidence
        ],
        "notes": list(session.notes),
        "wrap_up": session.wrap_up,
        "rating": session.rating,
        "rating_comment": session.rating_comment,
        "created_at": session.created_at,
        "closed_at": session.closed_at,
        "transactions": [
            {"id": t.id, "code": t.code, "status": t.status.value, "created_at": t.created_at,
             "confirmed_at": t.confirmed_at, "finished_at": t.finished_at, "audit_seq": t.audit_seq}
            for t in history
        ],
        "view_logged_as": viewed.seq,
    })


def setup(app: web.Application) -> None:
    """Routes of the consoles' glue; the console pages themselves are served by :mod:`web.pages`."""
    app.router.add_get("/login", login_page)
    app.router.add_get("/api/consoles/home", home)
    app.router.add_get("/api/consoles/wrap-ups", wrap_ups)
    app.router.add_get("/api/consoles/queue", agent_queue)
    app.router.add_get("/api/consoles/kpis", counter_kpis)
    app.router.add_get("/api/consoles/sessions/{sid}", session_record)
