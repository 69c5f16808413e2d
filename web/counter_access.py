"""Who may act on a counter session, and when: the agent whose call it is, the customer whose join
token is bound to it, each only while the call is connected (the customer also a while after it, to
rate it and read its results).  Refusals that name a line are audited.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from counter.appkeys import HELPERS, SESSIONS, SETTINGS
from counter.audit import AUDIT, AuditEvent
from counter.levels import identity_path, steps_json
from counter.sessions import CounterSession, CounterSessions, SessionNotFound
from counter.users import Role
from signaling.aio import SIGNALING
from signaling.helpers import holder_hold
from signaling.state import CallRecord, CallStatus
from storage.timeutil import unix_iso
from web.auth import require_role
from web.errors import ApiError
from web.openapi import CUSTOMER_HEADER

#: How long after the call a customer may still rate it and read its results (nothing else).
AFTER_CALL_S = 30 * 60


def session_json(session: CounterSession) -> dict[str, Any]:
    """A counter session as the agent's console shows it."""
    level, why = session.effective_level(for_change=True)
    return {
        "id": session.id,
        "agent": session.agent,
        "account": session.account,
        "face_consent": session.face_consent,
        "face_consent_at": session.face_consent_at,
        "level": str(session.level),
        "level_for_changes": str(level),
        "level_note": why.en if why else None,
        "level_note_zh": why.zh if why else None,
        "path": identity_path(session).value,
        "steps": steps_json(session),
        "level_method": session.level_method,
        "level_at": session.level_at,
        "evidence": [
            {"level": str(e.level), "method": e.method, "evidence": list(e.evidence), "subject": e.subject, "at": e.at}
            for e in session.evidence
        ],
        "notes": list(session.notes),
        "wrap_up": session.wrap_up,
        "rating": session.rating,
        "closed_at": session.closed_at,
    }


async def live_call(app: web.Application, call_id: str, agent: str) -> CallRecord | None:
    """The signaling call ``call_id`` if it is connected to ``agent`` now (on any node), else ``None``."""
    call = await app[SIGNALING].bus.read_call(call_id)
    if call is None or call.status != CallStatus.IN_CALL or call.agent_id != agent:
        return None
    return call


async def open_for_call(sessions: CounterSessions, call: CallRecord, agent: str) -> CounterSession:
    """The session of ``call``, connected to ``agent``: opened (or handed over) with what the customer
    gave when joining, as the call's ``accepted`` hook does."""
    return await sessions.open_for_call(
        call.call_id, agent, call.claimed_account or call.claimed_phone, call.face_consent,
        unix_iso(call.face_consent_at),
    )


async def still_connected(app: web.Application, session: CounterSession) -> bool:
    """Whether the call of a live session is connected to its agent now.

    While the shared signaling state is down (a Redis outage) the database's word stands: the
    session was opened for an accepted call and no end has been recorded, so the agent goes on
    serving the customer who is still on the line (the session ends when the call's end is seen).
    """
    if not session.live:
        return False
    try:
        return await live_call(app, session.id, session.agent) is not None
    except app[SIGNALING].bus.unavailable:
        return True


async def refusal(request: web.Request, session: CounterSession, actor_role: str, actor: str, code: str,
                  reason: str, status: int = 409, **extra: Any) -> ApiError:
    """An attempt on a line outside a live call (or an unrecorded one): audited (it names a line), then
    answered ``status``."""
    if session.account is not None:
        await request.app[AUDIT].append(AuditEvent(
            "session.refused", actor_role, actor, outcome="refused", session_id=session.id,
            account=session.account, details={"attempt": request.method + " " + _route_name(request), "code": code},
            reason=reason,
        ))
    return ApiError(status, code, reason, **extra)


async def _helper_hold(request: web.Request, session: CounterSession, actor_role: str, actor: str) -> None:
    """A helper (家属) is in the call: identity checks and changes wait until the holder is present and
    has agreed to the helper (reading goes on).  While the shared state is down, the database's word
    stands as in :func:`still_connected`."""
    if request.method in ("GET", "HEAD"):
        return
    bus = request.app[SIGNALING].bus
    try:
        call = await bus.read_call(session.id)
    except bus.unavailable:
        return
    held = holder_hold(call) if call is not None else None
    if held is not None:
        raise await refusal(request, session, actor_role, actor, held[0].value, held[1])


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else request.path[:100]


async def agent_session(request: web.Request, session_id: str | None = None, *, live: bool = True) -> CounterSession:
    """The caller's own counter session: staff only, the agent the session belongs to.

    A session exists only for a call this agent accepted: asking for one of a call that is connected
    to the caller opens it.  ``live`` (the default: everything that reads the account, proves or
    changes something) also needs that call connected to the caller now; without it (reading the
    session, notes, the wrap-up) an ended call's session is still the agent's to finish.
    """
    user = require_role(request, Role.AGENT, Role.SUPERVISOR).user
    session_id = session_id or request.match_info["sid"]
    sessions = request.app[SESSIONS]
    try:
        session = await sessions.get(session_id)
    except SessionNotFound as exc:
        call = await live_call(request.app, session_id, user.username)
        if call is None:
            raise ApiError(404, "no_session", "no counter session for that call: a session exists only for a "
                                              "call you accepted and that is connected") from exc
        session = await open_for_call(sessions, call, user.username)
    if session.agent != user.username and session.live:
        # Transferred to this agent: the call's `accepted` hook may not have run yet.
        call = await live_call(request.app, session.id, user.username)
        if call is not None:
            session = await open_for_call(sessions, call, user.username)
    if session.agent != user.username:
        raise ApiError(403, "not_your_session", "this counter session belongs to another agent")
    if live:
        if not session.open:
            raise await refusal(request, session, "agent", user.username, "session_closed",
                                "the session is closed: nothing more can be done in it")
        if not await still_connected(request.app, session):
            raise await refusal(request, session, "agent", user.username, "no_live_call",
                                "the customer is not connected in a call with you now: the account can be "
                                "read and changed only while its holder is in the call")
        await _helper_hold(request, session, "agent", user.username)
    return session


async def customer_session(request: web.Request, *, after_call: bool = False) -> CounterSession:
    """The session of the call the customer's join token (``X-Customer-Token``) is bound to.

    Only while an agent has accepted that call and it is connected; ``after_call``: also for
    :data:`AFTER_CALL_S` after it ended (the rating and the results screen), nothing else.
    """
    token = request.headers.get(CUSTOMER_HEADER, "")
    bound = await request.app[SIGNALING].store.token_call(token) if 0 < len(token) <= 200 else None
    if bound is None:
        if await request.app[HELPERS].store.is_helper_token(token):
            # A helper (家属) reads along and taps for the holder; only the holder's own token decides.
            raise ApiError(403, "helper_not_holder", "only the account holder can confirm or decline, "
                                                    "on their own screen")
        raise ApiError(401, "customer_token", f"send the {CUSTOMER_HEADER} given when your call started")
    try:
        session = await request.app[SESSIONS].get(bound.call_id)
    except SessionNotFound as exc:
        raise ApiError(403, "not_in_call", "no agent has taken your call yet") from exc
    actor = f"session:{session.id}"
    if bound.ended_at is None and await still_connected(request.app, session):
        if not after_call:
            await _helper_hold(request, session, "customer", actor)
        return session
    if bound.ended_at is None and session.live and not after_call:
        raise await refusal(request, session, "customer", actor, "agent_not_connected",
                            "no agent is connected to your call right now: stay on the line, the next agent "
                            "will take it from here")
    ended = bound.ended_at if bound.ended_at is not None else time.time()
    if after_call and time.time() - ended <= AFTER_CALL_S:
        return session
    raise await refusal(request, session, "customer", actor, "call_ended",
                        "your call has ended: start a new call to do more", status=403)


async def recording_rule(request: web.Request, session: CounterSession, actor_role: str, actor: str) -> None:
    """``require_recording``: refuse a state change while the call has gone unrecorded (the witness
    receives none of the customer's media) for longer than ``recording_grace_s``; audited."""
    settings = request.app[SETTINGS]
    if not settings.require_recording:
        return
    call = await request.app[SIGNALING].bus.read_call(session.id)
    unrecorded = call.unrecorded_for(time.time()) if call is not None else 0.0
    if unrecorded <= settings.recording_grace_s:
        return
    seconds = int(unrecorded)
    raise await refusal(
        request, session, actor_role, actor, "recording_required",
        f"this call has not been recorded for {seconds} s (the server receives no video from the customer): "
        "nothing can be changed until the recording runs again; keep the customer on the line while their "
        "page reconnects the recording",
        reason_zh=f"本次通话已有 {seconds} 秒没有录像（服务器收不到客户的视频）：录像恢复前不能办理变更业务；"
                  "请让客户保持通话，页面会自动重新连接录像",
    )
