"""Waiting without waiting, over HTTP: the way back from a kept place (``POST /api/customer/hold/return``)
and the timer that texts kept places whose turn is near (:mod:`signaling.hold`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from counter.appkeys import DB, SETTINGS
from signaling.aio import SIGNALING
from signaling.hold import HoldError, HoldOptions, Holds
from web.errors import ApiError, read_json

log = logging.getLogger("web.waiting")

HOLDS: web.AppKey[Holds] = web.AppKey("holds", Holds)
CODE_MAX = 64


async def hold_return(request: web.Request) -> web.Response:
    """The link from the text: a fresh join token for the kept call (no login: the code is the proof)."""
    body = await read_json(request, limit=1024)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not 0 < len(code) <= CODE_MAX:
        raise ApiError(400, "bad_request", "give the link's 'code' (text, at most 64 characters)", field="code")
    try:
        token, lane = await request.app[HOLDS].come_back(code)
    except HoldError as exc:
        raise ApiError(410 if exc.code == "expired" else 404, exc.code, str(exc)) from None
    return web.json_response({"token": token, "care": lane == "care", "ws_url": "/ws", "protocol": 1})


def _public_url(app: web.Application, options: HoldOptions) -> str:
    if options.public_url:
        return options.public_url
    settings = app[SETTINGS]
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else socket.gethostname()
    return f"{'https' if settings.tls else 'http'}://{host}:{settings.port}"


def setup(app: web.Application) -> None:
    """Component: kept places on the signaling service, their timer, and the way back."""
    options = HoldOptions.from_env(os.environ)
    audit_sink: Any = None
    with contextlib.suppress(ImportError):
        from counter.audit import AUDIT, AuditEvent

        if AUDIT in app:
            audit_log = app[AUDIT]

            async def audit_sink(action: str, call_id: str, details: Mapping[str, Any]) -> None:
                await audit_log.append(AuditEvent(action, "system", "system", session_id=call_id,
                                                  details=dict(details)))

    holds = Holds(app[SIGNALING], app[DB], options, _public_url(app, options), audit_sink)
    holds.attach()
    app[HOLDS] = holds

    async def loop() -> None:
        while True:
            await asyncio.sleep(app[SIGNALING].options.tick_s)
            try:
                await holds.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("kept places: timer pass failed; retrying")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(), name="kept-places")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/api/customer/hold/return", hold_return)
