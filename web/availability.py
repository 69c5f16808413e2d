"""Outages answered clearly: the database or the shared signaling state unreachable means ``503`` with
``Retry-After`` and a JSON reason (never a bare 500), and ``/readyz`` says which part is down.

Nothing is retried here: a request that met an outage did not happen (its database transaction rolled
back), so the client may send it again with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from counter.appkeys import NOT_READY
from counter.background import run_in_background
from identity.evidence import WrongMasterKey
from signaling.aio import SIGNALING
from storage import DatabaseError, IntegrityError
from web.errors import Handler, json_error

log = logging.getLogger("web.availability")

RETRY_AFTER_S = 5
_BUS_ERRORS: tuple[type[BaseException], ...] = (ConnectionError,)
with contextlib.suppress(ImportError):
    import redis.exceptions as _redis_errors

    _BUS_ERRORS = (ConnectionError, _redis_errors.ConnectionError, _redis_errors.TimeoutError)


def unavailable(what: str) -> web.Response:
    response = json_error(
        503, "unavailable", f"the {what} is unreachable for a moment; nothing was changed, try again in "
        f"{RETRY_AFTER_S} s", retry_after_s=RETRY_AFTER_S,
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


@web.middleware
async def availability_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``503 unavailable`` (with ``Retry-After``) when the database or Redis cannot be reached."""
    try:
        return await handler(request)
    except IntegrityError as exc:
        # Two requests raced for the same row (a unique key, a reference): the loser is told to look again.
        log.warning("conflicting write on %s %s: %s", request.method, request.path, type(exc).__name__)
        return json_error(409, "conflict", "someone else changed this at the same moment; nothing was changed "
                                           "by this request: reload and try again")
    except WrongMasterKey as exc:
        # a node set up without the installation's shared master key: say so, never a bare 500
        log.error("master key missing on %s %s: %s", request.method, request.path, exc)
        response = json_error(503, "key_unavailable", "this server cannot open a record sealed with another "
                              "master key: every node needs the same master key file (master_key_file)",
                              retry_after_s=RETRY_AFTER_S)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    except DatabaseError as exc:
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return unavailable("database")
    except _BUS_ERRORS as exc:
        log.warning("shared state unavailable on %s %s: %s", request.method, request.path, exc)
        return unavailable("queue service")


def setup(app: web.Application) -> None:
    """Install the middleware, and mirror the signaling service's outage state into ``/readyz``."""
    app.middlewares.append(availability_middleware)

    async def watch() -> None:
        service = app[SIGNALING]
        while True:
            if service.degraded is not None:
                app[NOT_READY]["signaling"] = f"degraded: {service.degraded}"
            else:
                app[NOT_READY].pop("signaling", None)
            await asyncio.sleep(0.2)

    run_in_background(app, "availability-watch", watch)
