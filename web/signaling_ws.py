"""HTTP side of signaling: ``POST /api/customer/join``, the ``/ws`` WebSocket, supervisor KPIs and snapshot."""

from __future__ import annotations

import logging
import time
from typing import Literal
from urllib.parse import urlsplit

from aiohttp import web

from counter.appkeys import DB, SETTINGS
from counter.audit import AUDIT, AuditEvent
from counter.background import repeat
from counter.users import Role
from signaling.aio import SIGNALING, serve_websocket
from signaling.metrics import lane_metrics
from signaling.protocol import AgentState
from signaling.service import CallEvent, ChatLine
from signaling.state import Principal
from storage.timeutil import unix_iso
from web.auth import current_session, require_role
from web.care_link import audit_join, care_by_age, care_by_number
from web.errors import ApiError, read_json
from web.params import MAX_HOURS, query_float

log = logging.getLogger("web.signaling")

_STAFF_ROLES: dict[Role, Literal["agent", "supervisor"]] = {Role.AGENT: "agent", Role.SUPERVISOR: "supervisor"}


def origin_allowed(request: web.Request, allowed: list[str]) -> bool:
    """A browser's Origin must be this host (any scheme matching the request) or a configured origin.

    Non-browser clients send no Origin; they cannot ride a victim's cookie, so they pass.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == request.host and (
        parts.scheme == request.scheme or request.secure == (parts.scheme == "https")
    )


async def customer_join(request: web.Request) -> web.Response:
    """Mint an anonymous join token (no login: a customer is identified later, on camera).

    A care link's ``hint`` (:mod:`web.care_link`), or the ``msisdn`` the customer typed on the first
    screen, puts a holder of ``care_age`` or more in the care lane."""
    body = await read_json(request, limit=4096) if request.can_read_body else None
    care = bool(body.get("care")) if isinstance(body, dict) else False
    by_age, line = await care_by_age(request, body.get("hint")) if isinstance(body, dict) else (False, None)
    source = "care_link"
    if not by_age and isinstance(body, dict) and body.get("msisdn") is not None:
        by_age, line = await care_by_number(request, body.get("msisdn"))
        source = "typed"
    service = request.app[SIGNALING]
    token = await service.mint_join(care or by_age)
    if by_age and line is not None:
        await audit_join(request, token.call_id, line, source)
    return web.json_response(
        {"token": token.token, "call_id": token.call_id, "expires_at": token.expires_at, "ws_url": "/ws",
         "protocol": 1, "care": care or by_age, "care_reason": "age" if by_age else None,
         "care_age": request.app[SETTINGS].care_age if by_age else None}
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if not origin_allowed(request, settings.allowed_origins):
        raise ApiError(403, "bad_origin", "this page's origin may not open the signaling socket; "
                                          "add it to allowed_origins if it is yours")
    session = current_session(request)
    staff = None
    if session is not None and session.user.role in _STAFF_ROLES:
        user = session.user
        staff = Principal(_STAFF_ROLES[user.role], user.username, user.display_name, frozenset(user.skills))
    return await serve_websocket(request, request.app[SIGNALING], staff)


async def supervisor_metrics(request: web.Request) -> web.Response:
    require_role(request, Role.SUPERVISOR)
    hours = query_float(request, "hours", 24.0, gt=0, le=MAX_HOURS)
    service = request.app[SIGNALING]
    lanes = await lane_metrics(
        request.app[DB], since=time.time() - hours * 3600, target_s=service.options.answer_target_s
    )
    states = {state.value: 0 for state in AgentState}
    for agent in await service.bus.read_agents():
        if agent.role == "agent":
            states[agent.state.value] += 1
    return web.json_response({"hours": hours, "answer_target_s": service.options.answer_target_s,
                              "wrap_up_s": service.options.wrap_up_s, "agent_states": states,
                              "lanes": [m.to_json() for m in lanes]})


async def supervisor_queue(request: web.Request) -> web.Response:
    require_role(request, Role.SUPERVISOR)
    return web.json_response(await request.app[SIGNALING].snapshot())


def _audit_hook(app: web.Application) -> None:
    audit = app[AUDIT]

    async def hook(event: CallEvent) -> None:
        action = {"joined": "call.joined", "accepted": "call.accepted", "ended": "call.ended",
                  "abandoned": "call.ended", "requeued": "call.requeued", "transferred": "call.transferred",
                  "monitored": "call.monitored"}.get(event.kind)
        if action is None:
            return
        details = {"lane": event.lane, "agent": event.agent, "kind": event.kind}
        account = event.claimed_account or event.claimed_phone
        await audit.append(
            AuditEvent(action, event.actor_role, event.actor_id, session_id=event.call_id, account=account,
                       details={k: v for k, v in details.items() if v is not None}, reason=event.reason)
        )
        if event.kind == "joined" and event.face_consent is not None:
            # The customer's own answer on their screen, before any agent saw them.
            await audit.append(
                AuditEvent("consent.face", "customer", event.actor_id, session_id=event.call_id, account=account,
                           outcome="ok" if event.face_consent else "refused",
                           details={"accepted": event.face_consent, "source": "customer_screen",
                                    "answered_at": unix_iso(event.face_consent_at)})
            )

    async def chat(line: ChatLine) -> None:
        # The words are personal data (purgeable); the entry itself keeps who wrote and how much.
        await audit.append(
            AuditEvent("call.chat", line.sender_role, line.sender_id, session_id=line.call_id,
                       account=line.claimed_account,
                       details={"sender_role": line.sender_role, "length": len(line.text)},
                       personal={"text": line.text})
        )

    app[SIGNALING].hooks.append(hook)
    app[SIGNALING].chat_hooks.append(chat)


def setup(app: web.Application) -> None:
    """The signaling routes (``/ws`` and the customer's join), its audit entries, and its start and stop
    (the service itself is built by :mod:`counter.app`)."""
    service = app[SIGNALING]
    options = service.options

    async def start(app: web.Application) -> None:
        _audit_hook(app)
        await service.start()

    async def stop(app: web.Application) -> None:
        await service.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    repeat(app, "signaling-token-purge", options.token_purge_every_s, service.store.purge_tokens,
           first_after_s=options.token_purge_every_s)
    app.router.add_post("/api/customer/join", customer_join)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/supervisor/metrics", supervisor_metrics)
    app.router.add_get("/api/supervisor/queue", supervisor_queue)
