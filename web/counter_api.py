"""HTTP API of the counter business layer: agent console, customer screen, supervisor.

Staff are authenticated by the web.auth cookie session (roles checked here, server-side); the
customer by their signaling join token (``X-Customer-Token``), which no agent-facing answer carries.  An agent
only reads the account of a session they own.  ``GET /api/openapi.json`` describes it all.

The routes are declared in :mod:`web.counter_agent`, :mod:`web.counter_customer` and
:mod:`web.counter_work`; who may act on a session is :mod:`web.counter_access`.  The services
(sessions, the transaction engine...) are built by :mod:`counter.app`; here they are tied to the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from counter.appkeys import ENGINE, MAINTENANCE, SESSIONS
from counter.sessions import CounterSession, CounterSessions
from counter.transactions.engine import HEARTBEAT_S, TransactionEngine
from signaling.aio import SIGNALING
from signaling.service import CallEvent, CallHook
from storage import DatabaseError
from storage.timeutil import iso, unix_iso, utcnow
from web import counter_agent, counter_customer, counter_work
from web.counter_access import AFTER_CALL_S, still_connected
from web.openapi import Described, openapi

log = logging.getLogger("web.counter_api")

#: Every route of the counter API, as the OpenAPI document describes it.
ROUTES: list[Described] = [*counter_agent.routes.described, *counter_work.routes.described,
                           *counter_customer.routes.described]


async def openapi_json(request: web.Request) -> web.Response:
    """OpenAPI 3.1 for the counter API."""
    return web.json_response(openapi(ROUTES, "Remote Counter: counter business API"))


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


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Before serving: finish what this node (or a dead one) left half-done; while serving: keep doing
    so, open and end sessions with their calls, and run the accounts' maintenance."""
    engine = app[ENGINE]
    await engine.heartbeat()
    connected = functools.partial(still_connected, app)
    await engine.recover(at_start=True, still_connected=connected)
    keeper = asyncio.create_task(_keep_alive(engine, connected), name="transaction-recovery")
    app[SIGNALING].hooks.append(call_hook(app[SESSIONS], engine))
    app[MAINTENANCE].start()
    yield
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    await app[MAINTENANCE].stop()


def setup(app: web.Application) -> None:
    """The counter API's routes, and its work beside the calls (:func:`lifecycle`)."""
    app.cleanup_ctx.append(lifecycle)
    for module in (counter_agent, counter_work, counter_customer):
        app.router.add_routes(module.routes.table)
    app.router.add_get("/api/openapi.json", openapi_json)
