"""The agent console's side of a counter session: open it, claim the line, prove the holder (A1 by
service password or SMS code), read the account, request transactions, note and close."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web
from pydantic import Field

from counter.appkeys import ACCOUNTS, ENGINE, GUARD, SESSIONS, SMS_CODES
from counter.audit import AUDIT, AuditEvent
from counter.guessing import SERVICE_PASSWORD
from counter.levels import Method, step_refusal, transaction_refusal
from counter.proofs import ProofKind
from counter.sessions import CounterSession, Level, SessionNotFound
from counter.transactions import CATALOG
from counter.users import Role
from signaling.aio import SIGNALING
from web.auth import require_role, retry_later
from web.bodies import StrictBody, parse_body
from web.counter_access import agent_session, live_call, open_for_call, recording_rule, session_json
from web.errors import ApiError
from web.openapi import ApiRoutes

routes = ApiRoutes()
SESSION = "/api/counter/sessions/{sid}"


class OpenSessionBody(StrictBody):
    call_id: str = Field(min_length=1, max_length=100)


class ClaimBody(StrictBody):
    msisdn: str = Field(pattern=r"^1[3-9]\d{9}$")
    claimed_name: str = Field("", max_length=50)


class ConsentBody(StrictBody):
    face_consent: bool


class PasswordBody(StrictBody):
    password: str = Field(min_length=1, max_length=20)


class SmsCodeBody(StrictBody):
    code: str = Field(pattern=r"^\d{6}$", description="the 6 digits the customer read out")


class NoteBody(StrictBody):
    text: str = Field(min_length=1, max_length=2000)


class CloseBody(StrictBody):
    wrap_up: str = Field(min_length=1, max_length=100)


class RunBody(StrictBody):
    code: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str = Field(min_length=1, max_length=100)


def _session_response(session: CounterSession) -> web.Response:
    return web.json_response({"session": session_json(session)})


@routes.post("/api/counter/sessions", "agent: open the counter session of a call", OpenSessionBody)
async def open_session(request: web.Request) -> web.Response:
    """The counter session of a call this agent accepted and that is connected now (on any node).

    There is no other way to a session: a made-up, unaccepted, ended or another agent's call is
    refused.  No customer credential is handed out: the customer confirms with their own signaling
    join token, which the agent never sees.
    """
    user = require_role(request, Role.AGENT, Role.SUPERVISOR).user
    body = await parse_body(request, OpenSessionBody)
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
    session = await open_for_call(sessions, call, user.username)
    if session.agent != user.username or not session.live:
        raise ApiError(409, "session", "that call's session is not open for you")
    return web.json_response({"session": session_json(session)}, status=201 if created else 200)


@routes.get(SESSION, "agent: session state and transactions")
async def get_session(request: web.Request) -> web.Response:
    """The session and its transactions."""
    session = await agent_session(request, live=False)
    history = await request.app[ENGINE].history(session.id)
    return web.json_response({"session": session_json(session), "transactions": [t.to_json() for t in history]})


@routes.post(SESSION + "/claim", "agent: the account the customer claims", ClaimBody)
async def claim(request: web.Request) -> web.Response:
    """The line the customer says is theirs (audited, with the name they gave)."""
    session = await agent_session(request)
    body = await parse_body(request, ClaimBody)
    before, level_before = session.account, session.level
    session = await request.app[SESSIONS].claim_account(session.id, body.msisdn, body.claimed_name)
    changed = before != body.msisdn
    await request.app[AUDIT].append(AuditEvent(
        "session.claim", "agent", session.agent, session_id=session.id, account=body.msisdn,
        details={"changed": changed, "level_before": str(level_before), "level": str(session.level)},
        personal={"claimed_name": body.claimed_name} if body.claimed_name else {},
    ))
    return _session_response(session)


@routes.post(SESSION + "/consent", "agent: face-processing consent answer", ConsentBody)
async def consent(request: web.Request) -> web.Response:
    """The customer's spoken answer to the face-processing question, recorded by the agent (audited).

    The customer's own on-screen answer comes with their ``join``; the agent may record a decline at
    any time but never turn the customer's on-screen decline into a consent.
    """
    session = await agent_session(request)
    body = await parse_body(request, ConsentBody)
    if body.face_consent:
        call = await request.app[SIGNALING].bus.read_call(session.id)
        if call is not None and call.face_consent is False:
            raise ApiError(409, "face_declined_by_customer",
                           "the customer declined face processing on their own screen: do not ask again; "
                           "use the attestation path (A1, then compare the ID card with the person and attest)")
    session = await request.app[SESSIONS].set_face_consent(session.id, body.face_consent)
    await request.app[AUDIT].append(AuditEvent(
        "consent.face", "agent", session.agent, outcome="ok" if body.face_consent else "refused",
        session_id=session.id, account=session.account,
        details={"accepted": body.face_consent, "source": "agent_recorded", "answered_at": session.face_consent_at},
    ))
    return _session_response(session)


@routes.post(SESSION + "/verify-password", "agent: A1 by password", PasswordBody)
async def verify_password(request: web.Request) -> web.Response:
    """A1 by the line's service password (said by the customer, typed by the agent)."""
    session = await agent_session(request)
    body = await parse_body(request, PasswordBody)
    return _session_response(await check_password(request, session, body.password, "agent", session.agent or ""))


async def check_password(request: web.Request, session: CounterSession, password: str, role: str,
                         actor: str) -> CounterSession:
    """A1 by the line's service password, given by ``actor`` (the agent, or the customer on their own
    keypad); wrong passwords count against the line in every session, and lock it for a while."""
    if session.account is None:
        raise ApiError(409, "no_account", "claim the customer's line first")
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
    if not await request.app[ACCOUNTS].verify_password(session.account, password):
        verdict = await guard.failed(SERVICE_PASSWORD, session.account)
        reason = "the service password is wrong; offer another way to prove identity"
        await request.app[AUDIT].append(AuditEvent(
            "identity.password", role, actor, outcome="refused", session_id=session.id,
            account=session.account, reason=reason,
            details={"failures_on_line": verdict.failures, "locked_for_s": verdict.locked_for_s},
        ))
        raise ApiError(403, "wrong_password", reason)
    await guard.succeeded(SERVICE_PASSWORD, session.account)
    sessions = request.app[SESSIONS]
    proof = await sessions.proofs.record_check(session.id, ProofKind.PASSWORD)
    return await sessions.raise_level(session.id, Level.A1, [proof.sha], Method.PASSWORD,
                                      recorded_by=session.agent if role == "agent" else actor)


@routes.post(SESSION + "/sms-code", "agent: A1 by SMS code, send the code")
async def send_sms_code(request: web.Request) -> web.Response:
    """A1 by one-time code, step 1: send a code to the claimed line (the SMS outbox)."""
    session = await agent_session(request)
    sent = await request.app[SMS_CODES].send(session.id, session.agent)
    return web.json_response(
        {"sent_to": sent.sent_to, "expires_at": sent.expires_at, "sends_left": sent.sends_left}, status=202
    )


@routes.post(SESSION + "/verify-sms-code", "agent: A1 by SMS code, enter the code", SmsCodeBody)
async def verify_sms_code(request: web.Request) -> web.Response:
    """A1 by one-time code, step 2: the code the customer read out, entered by the agent."""
    session = await agent_session(request)
    body = await parse_body(request, SmsCodeBody)
    return _session_response(await request.app[SMS_CODES].verify(session.id, body.code, session.agent))


@routes.post(SESSION + "/notes", "agent: add a note", NoteBody)
async def add_note(request: web.Request) -> web.Response:
    """A note on the session (also after the call, until it is closed)."""
    session = await agent_session(request, live=False)
    body = await parse_body(request, NoteBody)
    return _session_response(await request.app[SESSIONS].add_note(session.id, session.agent, body.text))


@routes.post(SESSION + "/close", "agent: wrap-up and close", CloseBody)
async def close_session(request: web.Request) -> web.Response:
    """The wrap-up code, closing the session (audited)."""
    session = await agent_session(request, live=False)
    body = await parse_body(request, CloseBody)
    session = await request.app[SESSIONS].close(session.id, body.wrap_up)
    await request.app[AUDIT].append(AuditEvent(
        "session.wrap_up", "agent", session.agent, session_id=session.id, account=session.account,
        details={"wrap_up": session.wrap_up, "level": str(session.level), "notes": len(session.notes)},
    ))
    return _session_response(session)


@routes.get(SESSION + "/account", "agent: the session's account (masked)")
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


@routes.get("/api/counter/catalog", "staff: the catalog (?session=ID: enabled/why not)")
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


@routes.post(SESSION + "/transactions", "agent: request a transaction", RunBody)
async def run_transaction(request: web.Request) -> web.Response:
    """A transaction of the catalog on the session's line (idempotent by its key)."""
    session = await agent_session(request)
    body = await parse_body(request, RunBody)
    spec = CATALOG.get(body.code)
    if spec is not None and spec.changes_state:
        await recording_rule(request, session, "agent", session.agent)
    key = request.headers.get("Idempotency-Key") or body.idempotency_key
    outcome = await request.app[ENGINE].request(session.id, body.code, body.inputs, key, session.agent)
    return web.json_response(outcome.to_json(), status=200 if outcome.status.value != "pending" else 202)
