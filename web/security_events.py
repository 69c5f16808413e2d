"""Security events: staff logins (ok and refused), logouts, and refused authorization.

A middleware watching the answers, so the handlers stay as they are.  Each event is a line on the
``security`` logger (masked like every record); with ``audit_security_events`` set
(``COUNTER_AUDIT_SECURITY_EVENTS=true``) it is also appended to the tamper-evident audit log.
Rate-limited requests (429) are not recorded one by one: a flood must not become a flood of entries.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from counter.appkeys import SETTINGS
from counter.audit import AUDIT, AuditEvent
from counter.users import WebSession
from signaling import protocol as p
from signaling.aio import SIGNALING
from web.auth import current_session
from web.errors import Handler
from web.ratelimit import client_address

log = logging.getLogger("web.security_events")
security_log = logging.getLogger("security")
TO_AUDIT = web.AppKey("security_events_to_audit", bool)

LOGIN = "/api/auth/login"
LOGOUT = "/api/auth/logout"


def _login_event(request: web.Request, status: int, body: bytes | None) -> AuditEvent | None:
    if status == 200 and body:
        user = json.loads(body).get("user", {})
        return AuditEvent("auth.login", str(user.get("role", "system")), str(user.get("username", "unknown")),
                          personal={"address": client_address(request)})
    if status in (400, 401, 413):
        return AuditEvent("auth.login", "system", "unknown", outcome="refused", reason=f"HTTP {status}",
                          personal={"address": client_address(request)})
    return None


@web.middleware
async def security_events_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Audit logins, logouts and 403s on the API after the answer is decided."""
    session = current_session(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        await _record(request, session, exc.status, exc.text.encode() if exc.text else None)
        raise
    body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else None
    await _record(request, session, response.status, body)
    return response


async def _record(request: web.Request, session: object, status: int, body: bytes | None) -> None:
    event: AuditEvent | None = None
    staff = session if isinstance(session, WebSession) else None
    if request.method == "POST" and request.path == LOGIN:
        try:
            event = _login_event(request, status, body)
        except ValueError:
            event = None
    elif request.method == "POST" and request.path == LOGOUT and status == 200 and staff is not None:
        event = AuditEvent("auth.logout", staff.user.role.value, staff.user.username)
        await _close_sockets(request.app, f"{staff.user.role.value}:{staff.user.username}")
    elif status == 403 and request.path.startswith("/api/") and staff is not None:
        code = ""
        if body:
            try:
                code = str(json.loads(body).get("error", {}).get("code", ""))
            except ValueError:
                code = ""
        event = AuditEvent("authz.refused", staff.user.role.value, staff.user.username, outcome="refused",
                           details={"method": request.method, "path": request.path[:200], "code": code})
    if event is None:
        return
    security_log.info("%s %s by %s:%s %s", event.action, event.outcome, event.actor_role, event.actor_id,
                      json.dumps({**event.details, **({"reason": event.reason} if event.reason else {})},
                                 ensure_ascii=False))
    if not request.app[TO_AUDIT]:
        return
    try:
        await request.app[AUDIT].append(event)
    except Exception as exc:  # the answer stands even if the audit log is unreachable right now
        log.warning("could not audit %s: %s", event.action, exc)


async def _close_sockets(app: web.Application, key: str) -> None:
    """Logging out ends the person's signaling socket on this node too (it was opened with the cookie).

    A socket held on another node stays until it closes (not yet: needs a bus control message)."""
    conn = app[SIGNALING].conns.get(key)
    if conn is not None:
        notice = p.Notice(code=p.NoticeCode.LOGGED_OUT, text="You logged out; log in again to continue.")
        await conn.send(p.dump(notice))
        await conn.close()


def setup(app: web.Application) -> None:
    """Component (after ``web.auth`` and ``web.audit_api``): install the middleware."""
    app[TO_AUDIT] = app[SETTINGS].audit_security_events
    app.middlewares.append(security_events_middleware)
