"""HTTP side of helpers (家属): the holder's invitation link and QR code, the helper's redemption.

``POST /api/customer/helper/invite`` (the holder, ``X-Customer-Token``): a fresh single-use link to the
call, valid ``INVITE_TTL_S``, and its QR code (SVG) for the page to show large.
``POST /api/helper/join`` ``{"code"}`` (no login): the helper's token for ``/ws``; an expired, used or
revoked code is refused (410) with a code the page words (``invite.<code>``).
``POST /api/helper/start`` (no login): a helper who comes first gets their own token for a new call and a
one-time holder link (``/customer#holder=…``) with its QR code, to open on the holder's device.
``POST /api/customer/holder/join`` ``{"code"}`` (no login): the holder's own join token for that call.
"""

from __future__ import annotations

import asyncio
import io
import logging

import qrcode
import qrcode.image.svg
from aiohttp import web

from counter.appkeys import HELPER_STARTS, HELPERS
from signaling.aio import SIGNALING
from web.errors import ApiError, read_json

log = logging.getLogger("web.helpers")

CUSTOMER_HEADER = "X-Customer-Token"
def qr_svg(text: str) -> str:
    """``text`` as a QR code, SVG (scales to any size on the page)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue().decode()


async def invite(request: web.Request) -> web.Response:
    """The holder invites a helper to their call (queued or connected; not ended)."""
    token = request.headers.get(CUSTOMER_HEADER, "")
    bound = await request.app[SIGNALING].store.token_call(token) if 0 < len(token) <= 200 else None
    if bound is None:
        raise ApiError(401, "customer_token", f"send the {CUSTOMER_HEADER} given when your call started")
    if bound.ended_at is not None or await request.app[SIGNALING].bus.read_call(bound.call_id) is None:
        raise ApiError(409, "call_ended", "your call has ended: a helper can join only a call in progress")
    made = await request.app[HELPERS].store.invite(bound.call_id, f"session:{bound.call_id}")
    link = f"{request.scheme}://{request.host}/helper#code={made.code}"
    svg = await asyncio.to_thread(qr_svg, link)
    return web.json_response({"code": made.code, "url": link, "expires_at": made.expires_at, "qr_svg": svg})


async def join(request: web.Request) -> web.Response:
    """Redeem an invitation: the helper's token, bound to the call."""
    body = await read_json(request, limit=1024)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str):
        raise ApiError(400, "bad_request", 'send {"code": "<the code from the invitation link>"}')
    made = await request.app[HELPERS].store.redeem(code)
    return web.json_response({"token": made.token, "call_id": made.call_id, "expires_at": made.expires_at,
                              "ws_url": "/ws", "protocol": 1})


async def helper_start(request: web.Request) -> web.Response:
    """A helper starts: their token for a new call (waiting for the holder) and the holder's one-time link."""
    made = await request.app[HELPER_STARTS].start()
    link = f"{request.scheme}://{request.host}/customer#holder={made.holder_code}"
    svg = await asyncio.to_thread(qr_svg, link)
    return web.json_response({
        "token": made.helper.token, "call_id": made.helper.call_id, "expires_at": made.helper.expires_at,
        "ws_url": "/ws", "protocol": 1,
        "holder": {"code": made.holder_code, "url": link, "expires_at": made.holder_expires_at, "qr_svg": svg},
    })


async def holder_join(request: web.Request) -> web.Response:
    """The holder opens the link a helper handed them: the holder's own join token for that call."""
    body = await read_json(request, limit=1024)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str):
        raise ApiError(400, "bad_request", 'send {"code": "<the code from the link>"}')
    service = request.app[SIGNALING]
    token = await request.app[HELPER_STARTS].redeem(code, service.options.join_token_ttl_s)
    return web.json_response({"token": token.token, "call_id": token.call_id, "expires_at": token.expires_at,
                              "ws_url": "/ws", "protocol": 1, "care": False, "care_reason": None})


def setup(app: web.Application) -> None:
    """The helpers' routes (the helpers themselves are built by :mod:`counter.app`)."""
    app.router.add_post("/api/customer/helper/invite", invite)
    app.router.add_post("/api/helper/join", join)
    app.router.add_post("/api/helper/start", helper_start)
    app.router.add_post("/api/customer/holder/join", holder_join)
