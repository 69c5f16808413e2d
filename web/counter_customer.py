"""The customer's screen during (and a while after) their call: confirmations, results, guidance,
their own service password, and the rating.  Authenticated by the join token, never by a cookie."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from counter.appkeys import ENGINE, GUIDANCE, SESSIONS
from counter.audit import AUDIT, AuditEvent
from web.bodies import StrictBody, parse_body
from web.counter_access import customer_session, recording_rule
from web.counter_agent import PasswordBody, check_password
from web.openapi import ApiRoutes
from web.params import path_int

routes = ApiRoutes()


class ConfirmBody(StrictBody):
    accept: bool


class RatingBody(StrictBody):
    rating: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=500)


@routes.get("/api/customer/counter", "customer: pending confirmations, results, guidance")
async def customer_state(request: web.Request) -> web.Response:
    """What waits for the customer's answer, the latest results and the guidance step shown."""
    session = await customer_session(request, after_call=True)
    engine = request.app[ENGINE]
    pending = [t.to_json(for_customer=True) for t in await engine.pending(session.id)]
    latest = [t.to_json(for_customer=True) for t in (await engine.history(session.id))[-5:]]
    guidance = await request.app[GUIDANCE].current(session.id)
    return web.json_response({"pending": pending, "recent": latest, "guidance": guidance})


@routes.post("/api/customer/counter/transactions/{tid}/confirm",
             "customer: confirm or decline on their own screen", ConfirmBody)
async def customer_confirm(request: web.Request) -> web.Response:
    """The customer's own yes or no to a transaction the agent requested."""
    session = await customer_session(request)
    body = await parse_body(request, ConfirmBody)
    if body.accept:
        await recording_rule(request, session, "customer", f"session:{session.id}")
    outcome = await request.app[ENGINE].confirm(path_int(request, "tid"), session.id, body.accept)
    return web.json_response(outcome.to_json(for_customer=True))


@routes.post("/api/customer/counter/rating", "customer: satisfaction rating", RatingBody)
async def customer_rating(request: web.Request) -> web.Response:
    """The customer's rating of the call (the comment is personal data: purgeable)."""
    session = await customer_session(request, after_call=True)
    body = await parse_body(request, RatingBody)
    await request.app[SESSIONS].rate(session.id, body.rating, body.comment)
    await request.app[AUDIT].append(AuditEvent(
        "session.rating", "customer", f"session:{session.id}", session_id=session.id, account=session.account,
        details={"rating": body.rating, "comment_length": len(body.comment)},
        personal={"comment": body.comment} if body.comment else {},
    ))
    return web.json_response({"ok": True})


@routes.post("/api/customer/counter/password",
             "customer: A1 by the service password typed on their own keypad", PasswordBody)
async def customer_password(request: web.Request) -> web.Response:
    """A1 by the line's service password typed by the customer on their own keypad: it goes to the
    server only (never to the agent, never as chat); the answer says whether it was right."""
    session = await customer_session(request)
    body = await parse_body(request, PasswordBody)
    await check_password(request, session, body.password, "customer", f"session:{session.id}")
    return web.json_response({"verified": True})
