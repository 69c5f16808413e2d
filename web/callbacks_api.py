"""Scheduled call-backs over HTTP: the customer books one (``POST /api/customer/callbacks``), the agent
sees due ones, starts one (an outbound video invitation: a text with a link that joins a call routed to
that agent) and records its outcome (``/api/consoles/callbacks``).  Audited at each step."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from counter.appkeys import CALLBACKS, DB, HOLDS
from counter.audit import AUDIT, AuditEvent
from counter.callbacks import CallbackResult
from counter.users import Role
from signaling.aio import SIGNALING
from signaling.service import CallEvent
from signaling.state import CallStatus
from storage.timeutil import iso
from web.auth import require_role
from web.errors import ApiError, read_json
from web.params import path_int

MOBILE = re.compile(r"1[3-9][0-9]{9}", re.ASCII)
async def book(request: web.Request) -> web.Response:
    """A waiting customer (their join token proves it) leaves a number and a preferred time."""
    body = await read_json(request, limit=2048)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "send a JSON object")
    token, msisdn, at = body.get("token"), body.get("msisdn"), body.get("preferred_at")
    if not isinstance(msisdn, str) or not MOBILE.fullmatch(msisdn):
        raise ApiError(400, "bad_request", "'msisdn' must be an 11-digit mobile number", field="msisdn")
    if not isinstance(at, (int, float)) or isinstance(at, bool) or not math.isfinite(at):
        raise ApiError(400, "bad_request", "'preferred_at' must be unix seconds", field="preferred_at")
    if not isinstance(token, str) or len(token) > 128:
        raise ApiError(400, "bad_request", "give your join 'token'", field="token")
    service = request.app[SIGNALING]
    bound = await service.store.token_call(token)
    if bound is None or bound.ended_at is not None:
        raise ApiError(403, "bad_token", "unknown or ended join token")
    call = await service.bus.read_call(bound.call_id)
    lane = call.lane if call is not None else "general"
    booked = await request.app[CALLBACKS].book(lane, msisdn, float(at))
    await request.app[AUDIT].append(AuditEvent(
        "callback.booked", "customer", f"session:{bound.call_id}", session_id=bound.call_id, account=msisdn,
        details={"callback": booked.id, "lane": lane, "preferred_at": iso_at(booked.preferred_at)}))
    return web.json_response({"id": booked.id, "preferred_at": booked.preferred_at, "lane": lane}, status=201)


def iso_at(unix: float) -> str:
    return iso(datetime.fromtimestamp(unix, UTC))


async def due(request: web.Request) -> web.Response:
    """The call-backs due now for the agent's lanes (the supervisor sees all)."""
    session = require_role(request, Role.AGENT, Role.SUPERVISOR)
    skills = list(session.user.skills) if session.user.role is Role.AGENT else ["care", "general"]
    rows = await request.app[CALLBACKS].due(skills)
    return web.json_response({"callbacks": [c.to_json() for c in rows], "now": time.time()})


async def start(request: web.Request) -> web.Response:
    """The agent starts a due call-back: a join token routed to them, the invitation texted."""
    session = require_role(request, Role.AGENT, Role.SUPERVISOR)
    callbacks = request.app[CALLBACKS]
    cid = path_int(request, "cid")
    current = await callbacks.get(cid)
    service = request.app[SIGNALING]
    token = await service.mint_join(current.lane == "care")
    agent = session.user.username
    started = await callbacks.start(cid, agent, token.call_id)
    link = f"{request.app[HOLDS].public_url}/customer?invite={token.token}"
    await request.app[DB].execute(
        "INSERT INTO sms_outbox (msisdn, body, created_at) VALUES ($1, $2, $3)", started.msisdn,
        f"【远程柜台】您预约的视频回呼：营业员现在等您，请点击链接接通：{link}", iso(),
    )
    await request.app[AUDIT].append(AuditEvent(
        "callback.started", session.user.role.value, agent, session_id=token.call_id, account=started.msisdn,
        details={"callback": cid, "lane": started.lane}))
    return web.json_response(started.to_json())


async def outcome(request: web.Request) -> web.Response:
    session = require_role(request, Role.AGENT, Role.SUPERVISOR)
    body = await read_json(request, limit=1024)
    raw = body.get("outcome") if isinstance(body, dict) else None
    try:
        result = CallbackResult(raw if isinstance(raw, str) else "")
    except ValueError:
        raise ApiError(400, "bad_request", f"'outcome' must be one of {', '.join(r.value for r in CallbackResult)}",
                       field="outcome") from None
    done = await request.app[CALLBACKS].record(path_int(request, "cid"), session.user.username, result)
    await request.app[AUDIT].append(AuditEvent(
        "callback.outcome", session.user.role.value, session.user.username, session_id=done.call_id,
        account=done.msisdn, details={"callback": done.id, "outcome": result.value}))
    return web.json_response(done.to_json())


def _route_to_agent(app: web.Application) -> Any:
    """The invited customer's call goes to the agent who started the call-back, at the head of the lane."""
    service = app[SIGNALING]

    async def hook(event: CallEvent) -> None:
        if event.kind != "joined":
            return
        callback = await app[CALLBACKS].by_call(event.call_id)
        if callback is None or callback.agent is None:
            return
        async with service.bus.lock():
            call = await service.bus.get_call(event.call_id)
            if call is None or call.status != CallStatus.QUEUED:
                return
            call.target_agent = callback.agent
            call.score = await service.bus.head_score(call.lane)
            await service.bus.enqueue(call)
        await service.store.save_call(call)

    return hook


def setup(app: web.Application) -> None:
    app[SIGNALING].hooks.insert(0, _route_to_agent(app))
    app.router.add_post("/api/customer/callbacks", book)
    app.router.add_get("/api/consoles/callbacks", due)
    app.router.add_post("/api/consoles/callbacks/{cid}/start", start)
    app.router.add_post("/api/consoles/callbacks/{cid}/outcome", outcome)
