"""Waiting without waiting, over HTTP: the way back from a kept place (``POST /api/customer/hold/return``)
and the timer that texts kept places whose turn is near (:mod:`signaling.hold`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from counter.appkeys import HOLDS
from signaling.aio import SIGNALING
from web.errors import ApiError, read_json

log = logging.getLogger("web.waiting")

CODE_MAX = 64


async def hold_return(request: web.Request) -> web.Response:
    """The link from the text: a fresh join token for the kept call (no login: the code is the proof)."""
    body = await read_json(request, limit=1024)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not 0 < len(code) <= CODE_MAX:
        raise ApiError(400, "bad_request", "give the link's 'code' (text, at most 64 characters)", field="code")
    token, lane = await request.app[HOLDS].come_back(code)
    return web.json_response({"token": token, "care": lane == "care", "ws_url": "/ws", "protocol": 1})


def setup(app: web.Application) -> None:
    """Component: the kept places' timer, and the way back (the places are built by :mod:`counter.app`)."""
    holds = app[HOLDS]

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
