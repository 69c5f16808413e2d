"""HTTP API of the counter business layer: agent console, customer screen, supervisor.

Staff are authenticated by the web.auth cookie session (roles checked here, server-side); the
customer by their signaling join token (``X-Customer-Token``), which no agent-facing answer carries.  An agent
only reads the account of a session they own.  ``GET /api/openapi.json`` describes it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from counter.accounts import AccountSystem, StorageAccountSystem
from counter.appkeys import DB, SETTINGS
from counter.audit import AUDIT, AuditEvent
from counter.guessing import SERVICE_PASSWORD
from counter.guidance import SCRIPTS, GuidanceError, GuidanceRuns
from counter.jobs import Maintenance
from counter.levels import Method, identity_path, step_refusal, steps_json, transaction_refusal
from counter.proofs import ProofKind
from counter.sealed import Sealer
from counter.sessions import CounterSession, CounterSessions, Level, SessionError, SessionNotFound
from counter.smscode import SmsCodeError, SmsCodes
from counter.transactions import CATALOG
from counter.transactions.engine import HEARTBEAT_S, TransactionEngine, TxError
from counter.users import Role
from counter.workorders import CallbackOutcome, NotYourWorkOrder, WorkOrderError, WorkOrders, WorkOrderStatus
from signaling.aio import SIGNALING
from signaling.helpers import holder_hold
from signaling.service import CallEvent, CallHook
from signaling.state import CallRecord, CallStatus
from storage import DatabaseError
from storage.timeutil import iso, unix_iso, utcnow
from web.auth import GUARD, require_role, retry_later
from web.errors import ApiError, read_json
from web.helpers_api import HELPERS
from web.params import path_int

ACCOUNTS = web.AppKey("accounts", AccountSystem)
SESSIONS = web.AppKey("counter_sessions", CounterSessions)
ENGINE = web.AppKey("transaction_engine", TransactionEngine)
WORKORDERS = web.AppKey("workorders", WorkOrders)
GUIDANCE = web.AppKey("guidance", GuidanceRuns)
MAINTENANCE = web.AppKey("counter_maintenance", Maintenance)
SMS_CODES = web.AppKey("sms_codes", SmsCodes)
CUSTOMER_HEADER = "X-Customer-Token"
log = logging.getLogger("web.counter_api")
M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenSessionBody(_Body):
    call_id: str = Field(min_length=1, max_length=100)


class ClaimBody(_Body):
    msisdn: str = Field(pattern=r"^1[3-9]\d{9}$")
    claimed_name: str = Field("", max_length=50)


class ConsentBody(_Body):
    face_consent: bool


class PasswordBody(_Body):
    password: str = Field(min_length=1, max_length=20)


class SmsCodeBody(_Body):
    code: str = Field(pattern=r"^\d{6}$", description="the 6 digits the customer read out")


class NoteBody(_Body):
    text: str = Field(min_length=1, max_length=2000)


class CloseBody(_Body):
    wrap_up: str = Field(min_length=1, max_length=100)


class RunBody(_Body):
    code: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str = Field(min_length=1, max_length=100)


class ConfirmBody(_Body):
    accept: bool


class RatingBody(_Body):
    rating: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=500)


class GuidanceStartBody(_Body):
    script: str


class GuidancePushBody(_Body):
    step: str


class WorkOrderStatusBody(_Body):
    status: WorkOrderStatus
    note: str = Field("", max_length=500)


class AssignBody(_Body):
    agent: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class CallbackBody(_Body):
    outcome: CallbackOutcome
    note: str = Field("", max_length=500)


async def _body(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(await read_json(request))
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        reason = "; ".join(f"{e['field']}: {e['error']}" for e in errors)
        raise ApiError(400, "bad_request", reason, errors=errors) from exc


def _session_json(session: CounterSession) -> dict[str, Any]:
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


#: How long after the call a customer may still rate it and read its results (nothing else).
AFTER_CALL_S = 30 * 60


async def live_call(app: web.Application, call_id: str, agent: str) -> CallRecord | None:
    """The signaling call ``call_id`` if it is connected to ``agent`` now (on any node), else ``None``."""
    call = await app[SIGNALING].bus.read_call(call_id)
    if call is None or call.status != CallStatus.IN_CALL or call.agent_id != agent:
        return None
    return call


async def _open_for_call(sessions: CounterSessions, call: CallRecord, agent: str) -> CounterSession:
    """The session of ``call``, connected to ``agent``: opened (or handed over) with what the customer
    gave when joining, as the call's ``accepted`` hook does."""
    return await sessions.open_for_call(
        call.call_id, agent, call.claimed_account or call.claimed_phone, call.face_consent,
        unix_iso(call.face_consent_at),
    )


async def _still_connected(app: web.Application, session: CounterSession) -> bool:
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


async def _refused(request: web.Request, session: CounterSession, actor_role: str, actor: str, code: str,
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
    stands as in :func:`_still_connected`."""
    if request.method in ("GET", "HEAD"):
        return
    bus = request.app[SIGNALING].bus
    try:
        call = await bus.read_call(session.id)
    except bus.unavailable:
        return
    held = holder_hold(call) if call is not None else None
    if held is not None:
        raise await _refused(request, session, actor_role, actor, held[0].value, held[1])


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
        session = await _open_for_call(sessions, call, user.username)
    if session.agent != user.username and session.live:
        # Transferred to this agent: the call's `accepted` hook may not have run yet.
        call = await live_call(request.app, session.id, user.username)
        if call is not None:
            session = await _open_for_call(sessions, call, user.username)
    if session.agent != user.username:
        raise ApiError(403, "not_your_session", "this counter session belongs to another agent")
    if live:
        if not session.open:
            raise await _refused(request, session, "agent", user.username, "session_closed",
                                 "the session is closed: nothing more can be done in it")
        if not await _still_connected(request.app, session):
            raise await _refused(request, session, "agent", user.username, "no_live_call",
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
        helpers = request.app.get(HELPERS)
        if helpers is not None and await helpers.store.is_helper_token(token):
            # A helper (家属) reads along and taps for the holder; only the holder's own token decides.
            raise ApiError(403, "helper_not_holder", "only the account holder can confirm or decline, "
                                                    "on their own screen")
        raise ApiError(401, "customer_token", f"send the {CUSTOMER_HEADER} given when your call started")
    try:
        session = await request.app[SESSIONS].get(bound.call_id)
    except SessionNotFound as exc:
        raise ApiError(403, "not_in_call", "no agent has taken your call yet") from exc
    if bound.ended_at is None and await _still_connected(request.app, session):
        if not after_call:
            await _helper_hold(request, session, "customer", f"session:{session.id}")
        return session
    if bound.ended_at is None and session.live and not after_call:
        raise await _refused(request, session, "customer", f"session:{session.id}", "agent_not_connected",
                             "no agent is connected to your call right now: stay on the line, the next agent "
                             "will take it from here")
    ended = bound.ended_at if bound.ended_at is not None else time.time()
    if after_call and time.time() - ended <= AFTER_CALL_S:
        return session
    raise await _refused(request, session, "customer", f"session:{session.id}", "call_ended",
                         "your call has ended: start a new call to do more", status=403)


def _session_error(exc: SessionError) -> ApiError:
    return ApiError(409, exc.code, exc.reason)


# --- agent -------------------------------------------------------------------------------------------


async def open_session(request: web.Request) -> web.Response:
    """The counter session of a call this agent accepted and that is connected now (on any node).

    There is no other way to a session: a made-up, unaccepted, ended or another agent's call is
    refused.  No customer credential is handed out: the customer confirms with their own signaling
    join token, which the agent never sees.
    """
    user = require_role(request, Role.AGENT, Role.SUPERVISOR).user
    body = await _body(request, OpenSessionBody)
    call = await live_call(request.app, body.call_id, user.username)
    if call is None:
        raise ApiError(404, "no_live_call", "no call of yours with that id is connected: accept the customer's "
                                            "call first")
    sessions = request.app[SESSIONS]
    try:
        await sessions.get(body.call_id)
        created = False
    except SessionNotFound:
        created = True
    session = await _open_for_call(sessions, call, user.username)
    if session.agent != user.username or not session.live:
        raise ApiError(409, "session", "that call's session is not open for you")
    return web.json_response({"session": _session_json(session)}, status=201 if created else 200)


async def get_session(request: web.Request) -> web.Response:
    session = await agent_session(request, live=False)
    history = await request.app[ENGINE].history(session.id)
    return web.json_response({"session": _session_json(session), "transactions": [t.to_json() for t in history]})


async def claim(request: web.Request) -> web.Response:
    session = await agent_session(request)
    body = await _body(request, ClaimBody)
    before, level_before = session.account, session.level
    try:
        session = await request.app[SESSIONS].claim_account(session.id, body.msisdn, body.claimed_name)
    except SessionError as exc:
        raise _session_error(exc) from exc
    changed = before != body.msisdn
    await request.app[AUDIT].append(AuditEvent(
        "session.claim", "agent", session.agent, session_id=session.id, account=body.msisdn,
        details={"changed": changed, "level_before": str(level_before), "level": str(session.level)},
        personal={"claimed_name": body.claimed_name} if body.claimed_name else {},
    ))
    return web.json_response({"session": _session_json(session)})


async def consent(request: web.Request) -> web.Response:
    """The customer's spoken answer to the face-processing question, recorded by the agent (audited).

    The customer's own on-screen answer comes with their ``join``; the agent may record a decline at
    any time but never turn the customer's on-screen decline into a consent.
    """
    session = await agent_session(request)
    body = await _body(request, ConsentBody)
    if body.face_consent:
        call = await request.app[SIGNALING].bus.read_call(session.id)
        if call is not None and call.face_consent is False:
            raise ApiError(409, "face_declined_by_customer",
                           "the customer declined face processing on their own screen: do not ask again; "
                           "use the attestation path (A1, then compare the ID card with the person and attest)")
    try:
        session = await request.app[SESSIONS].set_face_consent(session.id, body.face_consent)
    except SessionError as exc:
        raise _session_error(exc) from exc
    await request.app[AUDIT].append(AuditEvent(
        "consent.face", "agent", session.agent, outcome="ok" if body.face_consent else "refused",
        session_id=session.id, account=session.account,
        details={"accepted": body.face_consent, "source": "agent_recorded", "answered_at": session.face_consent_at},
    ))
    return web.json_response({"session": _session_json(session)})


async def verify_password(request: web.Request) -> web.Response:
    """A1 by the line's service password (said by the customer, typed by the agent)."""
    session = await agent_session(request)
    body = await _body(request, PasswordBody)
    session = await _password_check(request, session, body.password, "agent", session.agent or "")
    return web.json_response({"session": _session_json(session)})


async def customer_password(request: web.Request) -> web.Response:
    """A1 by the line's service password typed by the customer on their own keypad: it goes to the
    server only (never to the agent, never as chat); the answer says whether it was right."""
    session = await customer_session(request)
    body = await _body(request, PasswordBody)
    await _password_check(request, session, body.password, "customer", f"session:{session.id}")
    return web.json_response({"verified": True})


async def _password_check(request: web.Request, session: CounterSession, password: str, role: str,
                          actor: str) -> CounterSession:
    if session.account is None:
        raise ApiError(409, "no_account", "claim the customer's line first")
    sessions = request.app[SESSIONS]
    if (why := step_refusal(session, Method.PASSWORD)) is not None:
        raise ApiError(409, why.code, why.en, reason_zh=why.zh)
    guard = request.app[GUARD]
    if wait := await guard.locked(SERVICE_PASSWORD, session.account):
        retry = max(1, math.ceil(wait))
        reason = (f"too many wrong service passwords for this line (in any session): try again in {retry} s, "
                  "or offer another way to prove identity")
        await request.app[AUDIT].append(AuditEvent(
            "identity.password", role, actor, outcome="refused", session_id=session.id,
            account=session.account, reason=reason, details={"locked": True},
        ))
        raise retry_later(ApiError(429, "password_locked", reason, retry_after_s=retry), retry)
    ok = await request.app[ACCOUNTS].verify_password(session.account, password)
    if not ok:
        verdict = await guard.failed(SERVICE_PASSWORD, session.account)
        reason = "the service password is wrong; offer another way to prove identity"
        await request.app[AUDIT].append(AuditEvent(
            "identity.password", role, actor, outcome="refused", session_id=session.id,
            account=session.account, reason=reason,
            details={"failures_on_line": verdict.failures, "locked_for_s": verdict.locked_for_s},
        ))
        raise ApiError(403, "wrong_password", reason)
    await guard.succeeded(SERVICE_PASSWORD, session.account)
    proof = await sessions.proofs.record_check(session.id, ProofKind.PASSWORD)
    try:
        return await sessions.raise_level(session.id, Level.A1, [proof.sha], Method.PASSWORD,
                                          recorded_by=session.agent if role == "agent" else actor)
    except SessionError as exc:
        raise ApiError(409, exc.code, exc.reason) from exc


async def send_sms_code(request: web.Request) -> web.Response:
    """A1 by one-time code, step 1: send a code to the claimed line (the SMS outbox)."""
    session = await agent_session(request)
    try:
        sent = await request.app[SMS_CODES].send(session.id, session.agent)
    except SmsCodeError as exc:
        raise ApiError(409, exc.code, exc.reason) from exc
    return web.json_response(
        {"sent_to": sent.sent_to, "expires_at": sent.expires_at, "sends_left": sent.sends_left}, status=202
    )


async def verify_sms_code(request: web.Request) -> web.Response:
    """A1 by one-time code, step 2: the code the customer read out, entered by the agent."""
    session = await agent_session(request)
    body = await _body(request, SmsCodeBody)
    try:
        session = await request.app[SMS_CODES].verify(session.id, body.code, session.agent)
    except SmsCodeError as exc:
        status = 403 if exc.code == "wrong_code" else 409
        raise ApiError(status, exc.code, exc.reason, attempts_left=exc.attempts_left) from exc
    except SessionError as exc:
        raise _session_error(exc) from exc
    return web.json_response({"session": _session_json(session)})


async def add_note(request: web.Request) -> web.Response:
    session = await agent_session(request, live=False)
    body = await _body(request, NoteBody)
    try:
        session = await request.app[SESSIONS].add_note(session.id, session.agent, body.text)
    except SessionError as exc:
        raise _session_error(exc) from exc
    return web.json_response({"session": _session_json(session)})


async def close_session(request: web.Request) -> web.Response:
    session = await agent_session(request, live=False)
    body = await _body(request, CloseBody)
    try:
        session = await request.app[SESSIONS].close(session.id, body.wrap_up)
    except SessionError as exc:
        raise _session_error(exc) from exc
    await request.app[AUDIT].append(AuditEvent(
        "session.wrap_up", "agent", session.agent, session_id=session.id, account=session.account,
        details={"wrap_up": session.wrap_up, "level": str(session.level), "notes": len(session.notes)},
    ))
    return web.json_response({"session": _session_json(session)})


async def account(request: web.Request) -> web.Response:
    """The account of the agent's own session (masked ID number, no photo, no PUK)."""
    session = await agent_session(request)
    if session.account is None:
        raise ApiError(409, "no_account", "claim the customer's line first")
    acct = await request.app[ACCOUNTS].get(session.account)
    if acct is None:
        raise ApiError(404, "no_account", f"no line {session.account}: check the number with the customer")
    return web.json_response(
        {
            "msisdn": acct.msisdn,
            "holder": {
                "name": acct.holder.name,
                "id_number": acct.holder.id_number[:3] + "*" * 11 + acct.holder.id_number[-4:],
                "birth_date": acct.holder.birth_date,
            },
            "status": acct.status.value,
            "plan": acct.plan,
            "pending_plan": acct.pending_plan,
            "addons": list(acct.addons),
            "roaming": acct.roaming,
            "spamblock": acct.spamblock,
            "datacap_mb": acct.datacap_mb,
            "forwarding": acct.forwarding,
        }
    )


async def catalog(request: web.Request) -> web.Response:
    """The catalog; with ``?session=ID`` each entry says whether it is enabled now, and why not."""
    require_role(request)
    session = None
    if "session" in request.query:
        session = await agent_session(request, request.query["session"], live=False)
    items = []
    for spec in CATALOG.values():
        item = spec.to_json()
        if session is not None:
            why = transaction_refusal(spec, session)
            item["enabled"] = why is None
            item["why_not_code"] = why.code if why else None
            item["why_not"] = why.en if why else None
            item["why_not_zh"] = why.zh if why else None
        items.append(item)
    return web.json_response({"transactions": items})


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
    raise await _refused(
        request, session, actor_role, actor, "recording_required",
        f"this call has not been recorded for {seconds} s (the server receives no video from the customer): "
        "nothing can be changed until the recording runs again; keep the customer on the line while their "
        "page reconnects the recording",
        reason_zh=f"本次通话已有 {seconds} 秒没有录像（服务器收不到客户的视频）：录像恢复前不能办理变更业务；"
                  "请让客户保持通话，页面会自动重新连接录像",
    )


async def run_transaction(request: web.Request) -> web.Response:
    session = await agent_session(request)
    body = await _body(request, RunBody)
    spec = CATALOG.get(body.code)
    if spec is not None and spec.changes_state:
        await recording_rule(request, session, "agent", session.agent)
    key = request.headers.get("Idempotency-Key") or body.idempotency_key
    try:
        outcome = await request.app[ENGINE].request(session.id, body.code, body.inputs, key, session.agent)
    except TxError as exc:
        raise ApiError(exc.status, exc.code, exc.reason) from exc
    return web.json_response(outcome.to_json(), status=200 if outcome.status.value != "pending" else 202)


# --- customer ----------------------------------------------------------------------------------------


async def customer_state(request: web.Request) -> web.Response:
    session = await customer_session(request, after_call=True)
    engine = request.app[ENGINE]
    pending = [t.to_json(for_customer=True) for t in await engine.pending(session.id)]
    latest = [t.to_json(for_customer=True) for t in (await engine.history(session.id))[-5:]]
    guidance = await request.app[GUIDANCE].current(session.id)
    return web.json_response({"pending": pending, "recent": latest, "guidance": guidance})


async def customer_confirm(request: web.Request) -> web.Response:
    session = await customer_session(request)
    body = await _body(request, ConfirmBody)
    if body.accept:
        await recording_rule(request, session, "customer", f"session:{session.id}")
    try:
        outcome = await request.app[ENGINE].confirm(path_int(request, "tid"), session.id, body.accept)
    except TxError as exc:
        raise ApiError(exc.status, exc.code, exc.reason) from exc
    return web.json_response(outcome.to_json(for_customer=True))


async def customer_rating(request: web.Request) -> web.Response:
    session = await customer_session(request, after_call=True)
    body = await _body(request, RatingBody)
    await request.app[SESSIONS].rate(session.id, body.rating, body.comment)
    await request.app[AUDIT].append(AuditEvent(
        "session.rating", "customer", f"session:{session.id}", session_id=session.id, account=session.account,
        details={"rating": body.rating, "comment_length": len(body.comment)},
        personal={"comment": body.comment} if body.comment else {},
    ))
    return web.json_response({"ok": True})


# --- supervisor, work orders, guidance ---------------------------------------------------------------------


async def approvals(request: web.Request) -> web.Response:
    require_role(request, Role.SUPERVISOR)
    return web.json_response({"pending": [t.to_json() for t in await request.app[ENGINE].awaiting_approval()]})


async def approve(request: web.Request) -> web.Response:
    user = require_role(request, Role.SUPERVISOR).user
    try:
        outcome = await request.app[ENGINE].approve(path_int(request, "tid"), user.username)
    except TxError as exc:
        raise ApiError(exc.status, exc.code, exc.reason) from exc
    return web.json_response(outcome.to_json())


async def list_workorders(request: web.Request) -> web.Response:
    """Supervisors: every work order.  Agents: those of one of their sessions (``?session=ID``) or
    those assigned to them (``?assigned=me``)."""
    user = require_role(request, Role.AGENT, Role.SUPERVISOR).user
    status = request.query.get("status")
    session_id = request.query.get("session")
    assigned = user.username if request.query.get("assigned") == "me" else None
    if user.role != Role.SUPERVISOR and session_id is None and assigned is None:
        raise ApiError(403, "forbidden", "agents list the work orders of their session (?session=ID) "
                                         "or those assigned to them (?assigned=me)")
    if session_id is not None and user.role != Role.SUPERVISOR:
        await agent_session(request, session_id, live=False)
    try:
        orders = await request.app[WORKORDERS].list(
            status=WorkOrderStatus(status) if status else None, session_id=session_id, assigned_to=assigned
        )
    except ValueError as exc:
        raise ApiError(400, "bad_status", f"unknown status {status!r}") from exc
    return web.json_response({"work_orders": [o.to_json() for o in orders]})


async def _workorder_for(request: web.Request) -> tuple[int, str]:
    """The work order id of the path and the caller, who must be a supervisor or the agent whose it is."""
    user = require_role(request, Role.AGENT, Role.SUPERVISOR).user
    order_id = path_int(request, "wid")
    if user.role != Role.SUPERVISOR:
        try:
            await request.app[WORKORDERS].for_agent(order_id, user.username)
        except NotYourWorkOrder as exc:
            raise ApiError(403, "not_your_work_order", str(exc)) from exc
        except WorkOrderError as exc:
            raise ApiError(404, "not_found", str(exc)) from exc
    return order_id, user.username


async def workorder_status(request: web.Request) -> web.Response:
    order_id, username = await _workorder_for(request)
    body = await _body(request, WorkOrderStatusBody)
    try:
        order = await request.app[WORKORDERS].set_status(order_id, body.status, username, body.note)
    except WorkOrderError as exc:
        raise ApiError(409, "work_order", str(exc)) from exc
    return web.json_response(order.to_json())


async def workorder_callback(request: web.Request) -> web.Response:
    order_id, username = await _workorder_for(request)
    body = await _body(request, CallbackBody)
    try:
        order = await request.app[WORKORDERS].record_callback(order_id, body.outcome, username, body.note)
    except WorkOrderError as exc:
        raise ApiError(409, "work_order", str(exc)) from exc
    return web.json_response(order.to_json())


async def workorder_assign(request: web.Request) -> web.Response:
    user = require_role(request, Role.SUPERVISOR).user
    body = await _body(request, AssignBody)
    try:
        order = await request.app[WORKORDERS].assign(path_int(request, "wid"), body.agent, user.username)
    except WorkOrderError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return web.json_response(order.to_json())


async def guidance_scripts(request: web.Request) -> web.Response:
    require_role(request)
    return web.json_response({"scripts": [s.to_json() for s in SCRIPTS.values()]})


async def guidance_start(request: web.Request) -> web.Response:
    session = await agent_session(request)
    body = await _body(request, GuidanceStartBody)
    try:
        run_id = await request.app[GUIDANCE].start(session.id, body.script)
    except GuidanceError as exc:
        raise ApiError(400, "guidance", str(exc)) from exc
    return web.json_response({"run_id": run_id}, status=201)


async def guidance_push(request: web.Request) -> web.Response:
    session = await agent_session(request)
    body = await _body(request, GuidancePushBody)
    guidance = request.app[GUIDANCE]
    try:
        run = await guidance.get(path_int(request, "rid"))
        if run["session_id"] != session.id:
            raise GuidanceError("that guidance run belongs to another session")
        step = await guidance.push(run["id"], body.step)
    except GuidanceError as exc:
        raise ApiError(409, "guidance", str(exc)) from exc
    return web.json_response({"step": {"id": step.id, "zh": step.zh, "en": step.en}})


# --- OpenAPI -------------------------------------------------------------------------------------------------

ROUTES: list[tuple[str, str, Any, type[BaseModel] | None, str]] = [
    ("POST", "/api/counter/sessions", open_session, OpenSessionBody, "agent: open the counter session of a call"),
    ("GET", "/api/counter/sessions/{sid}", get_session, None, "agent: session state and transactions"),
    ("POST", "/api/counter/sessions/{sid}/claim", claim, ClaimBody, "agent: the account the customer claims"),
    ("POST", "/api/counter/sessions/{sid}/consent", consent, ConsentBody, "agent: face-processing consent answer"),
    ("POST", "/api/counter/sessions/{sid}/verify-password", verify_password, PasswordBody, "agent: A1 by password"),
    ("POST", "/api/counter/sessions/{sid}/sms-code", send_sms_code, None, "agent: A1 by SMS code, send the code"),
    (
        "POST",
        "/api/counter/sessions/{sid}/verify-sms-code",
        verify_sms_code,
        SmsCodeBody,
        "agent: A1 by SMS code, enter the code",
    ),
    ("POST", "/api/counter/sessions/{sid}/notes", add_note, NoteBody, "agent: add a note"),
    ("POST", "/api/counter/sessions/{sid}/close", close_session, CloseBody, "agent: wrap-up and close"),
    ("GET", "/api/counter/sessions/{sid}/account", account, None, "agent: the session's account (masked)"),
    ("POST", "/api/counter/sessions/{sid}/transactions", run_transaction, RunBody, "agent: request a transaction"),
    ("POST", "/api/counter/sessions/{sid}/guidance", guidance_start, GuidanceStartBody, "agent: start guidance"),
    (
        "POST",
        "/api/counter/sessions/{sid}/guidance/{rid}/push",
        guidance_push,
        GuidancePushBody,
        "agent: push a step to the customer's screen",
    ),
    ("GET", "/api/counter/catalog", catalog, None, "staff: the catalog (?session=ID: enabled/why not)"),
    ("GET", "/api/counter/guidance/scripts", guidance_scripts, None, "staff: the guidance knowledge base"),
    ("GET", "/api/counter/approvals", approvals, None, "supervisor: A4 requests awaiting approval"),
    ("POST", "/api/counter/approvals/{tid}", approve, None, "supervisor: approve an A4 request"),
    (
        "GET",
        "/api/counter/workorders",
        list_workorders,
        None,
        "supervisor: all work orders, overdue first; agent: ?session=ID (own) or ?assigned=me",
    ),
    ("POST", "/api/counter/workorders/{wid}/status", workorder_status, WorkOrderStatusBody, "move a work order on"),
    ("POST", "/api/counter/workorders/{wid}/callback", workorder_callback, CallbackBody, "record the call-back"),
    ("POST", "/api/counter/workorders/{wid}/assign", workorder_assign, AssignBody, "supervisor: assign to an agent"),
    ("GET", "/api/customer/counter", customer_state, None, "customer: pending confirmations, results, guidance"),
    (
        "POST",
        "/api/customer/counter/transactions/{tid}/confirm",
        customer_confirm,
        ConfirmBody,
        "customer: confirm or decline on their own screen",
    ),
    ("POST", "/api/customer/counter/rating", customer_rating, RatingBody, "customer: satisfaction rating"),
    ("POST", "/api/customer/counter/password", customer_password, PasswordBody,
     "customer: A1 by the service password typed on their own keypad"),
]


_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ERRORS = {
    str(status): {"description": text, "content": _ERROR_BODY}
    for status, text in (
        (400, "bad input (error.errors lists the fields)"),
        (401, "not logged in / no valid customer token"),
        (403, "wrong role, another agent's session, wrong password or code, missing CSRF header"),
        (404, "no such session, transaction request or work order"),
        (409, "refused in this state (error.reason says why and what to do)"),
    )
}


def openapi() -> dict[str, Any]:
    """OpenAPI 3.1 for this API, schemas generated from the pydantic models and the catalog."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for method, path, _handler, model, summary in ROUTES:
        op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}, **_ERRORS}}
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
            ]
        if model is not None:
            schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        op["security"] = [{"customerToken": []}] if path.startswith("/api/customer") else [{"staffCookie": []}]
        paths.setdefault(path, {})[method.lower()] = op
    paths["/api/openapi.json"] = {
        "get": {"summary": "anyone: this document", "responses": {"200": {"description": "OpenAPI 3.1"}}}
    }
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "reason"],
                "properties": {"code": {"type": "string"}, "reason": {"type": "string"}},
                "additionalProperties": True,
            }
        },
    }
    for spec in CATALOG.values():
        name = "Tx_" + spec.code.replace(".", "_")
        schemas[name] = {
            **spec.inputs.model_json_schema(),
            "title": f"{spec.code}: {spec.title_en}",
            "x-level": str(spec.level),
            "x-changes-state": spec.changes_state,
        }
    for schema in list(schemas.values()):
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Remote Counter: counter business API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "staffCookie": {"type": "apiKey", "in": "cookie", "name": "rc_session"},
                "customerToken": {"type": "apiKey", "in": "header", "name": CUSTOMER_HEADER},
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi())


def call_hook(sessions: CounterSessions, engine: TransactionEngine) -> CallHook:
    """A signaling hook: when an agent accepts a call, the call's counter session exists (keyed by
    the call id; handed to the new agent after a transfer); when the call ends, so does the session
    (after the signaling layer's reconnect grace), with its requests still waiting refused."""

    async def hook(event: CallEvent) -> None:
        if event.kind == "accepted" and event.agent is not None and event.actor_role in ("agent", "supervisor"):
            # the customer's on-screen face-data answer came with their join (audited then)
            await sessions.open_for_call(
                event.call_id, event.agent, event.claimed_account or event.claimed_phone, event.face_consent,
                unix_iso(event.face_consent_at),
            )
        elif event.kind in ("ended", "abandoned") and await sessions.end_call(event.call_id) is not None:
            await engine.call_ended(event.call_id)

    return hook


async def _keep_alive(engine: TransactionEngine, connected: Callable[[CounterSession], Awaitable[bool]]) -> None:
    """Say this node is alive, and finish what nodes that died left in flight, every few seconds."""
    passes = 0
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await engine.heartbeat()
            await engine.recover(still_connected=connected)
            passes += 1
            if passes % 20 == 1:  # about once a minute
                await engine.forget_secrets(iso(utcnow() - timedelta(seconds=AFTER_CALL_S)))
        except DatabaseError as exc:
            log.warning("transaction recovery pass skipped: %s", exc)


def setup(app: web.Application) -> None:
    """Account system, sessions, engine and work orders on the app; routes for console and customer."""
    db = app[DB]
    accounts = StorageAccountSystem(db, Sealer(app[SETTINGS].effective_master_key_file))
    app[ACCOUNTS] = accounts
    app[SESSIONS] = CounterSessions(db, app[AUDIT])
    app[WORKORDERS] = WorkOrders(db)
    app[GUIDANCE] = GuidanceRuns(db)
    app[ENGINE] = TransactionEngine(
        db, app[ACCOUNTS], app[SESSIONS], app[WORKORDERS], app[AUDIT], node_id=app[SETTINGS].effective_node_id
    )
    app[MAINTENANCE] = Maintenance(accounts, app[AUDIT])
    app[SMS_CODES] = SmsCodes(db, accounts, app[SESSIONS], app[AUDIT])

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        engine = app[ENGINE]
        # Before serving anything: nothing this node (or a dead one) left half-done stays so.
        await engine.heartbeat()
        connected = functools.partial(_still_connected, app)
        await engine.recover(at_start=True, still_connected=connected)
        keeper = asyncio.create_task(_keep_alive(engine, connected), name="transaction-recovery")
        app[SIGNALING].hooks.append(call_hook(app[SESSIONS], engine))
        app[MAINTENANCE].start()
        yield
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await app[MAINTENANCE].stop()

    app.cleanup_ctx.append(lifecycle)
    for method, path, handler, _model, _summary in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get("/api/openapi.json", openapi_json)
