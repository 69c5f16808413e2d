"""Requests for a call served by its owner node, whichever node receives them.

The owners (:class:`~signaling.owners.Owners`, ``app[OWNERS]``, built by :mod:`counter.app`): every few
seconds this node says where it is reached (``internal_url``, with the bus heartbeat).  Handlers that need
what only the owner holds (the witness's live frames, a recording's files) call :func:`at_owner`
first: when another live node owns the call, the request is passed to it as it came (cookies, CSRF
and customer token included: the owner checks them again against the shared database) and its
answer returned.  A forwarded request carries ``X-Counter-Forwarded`` and is never passed on again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import ssl

import aiohttp
from aiohttp import web

from counter.appkeys import OWNERS, SETTINGS
from counter.certs import CertPaths
from counter.config import Settings
from signaling.aio import SIGNALING
from web.auth import retry_later
from web.errors import ApiError, Handler
from web.openapi import CUSTOMER_HEADER
from web.ratelimit import RATE_LIMIT_EXEMPT

log = logging.getLogger("web.owners")

_HTTP = web.AppKey("owners_http", aiohttp.ClientSession)
_BEAT = web.AppKey("owners_heartbeat", asyncio.Task[None])
FORWARDED = "X-Counter-Forwarded"
#: Request headers not passed to the owner (hop-by-hop, or set again by the client library).
_DROP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "accept-encoding"}
_KEEP_BACK = ("Content-Type", "Cache-Control", "Content-Range", "Accept-Ranges", "Retry-After")
PROXY_TIMEOUT_S = 60.0


def internal_url(settings: Settings) -> str:
    """Where other nodes reach this one: ``internal_url``, else the scheme, host and port it serves."""
    if settings.internal_url:
        return settings.internal_url.rstrip("/")
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if settings.tls else 'http'}://{host}:{settings.port}"


def forwarded(request: web.Request) -> bool:
    """The request says it was passed here by another node: answer it here, whatever the owner record
    says (never passed on again, whoever sent it)."""
    return FORWARDED in request.headers


def from_node(request: web.Request) -> bool:
    """The request was passed here by a node of this installation (it knows the nodes' secret): it
    passed that node's rate limits already."""
    owners = request.app[OWNERS]
    given = request.headers.get(FORWARDED, "")
    return bool(owners.secret) and hmac.compare_digest(given.encode(), owners.secret.encode())


async def at_owner(request: web.Request, call_id: str) -> web.Response | None:
    """The owner's answer when another live node owns ``call_id``; ``None``: answer here."""
    owners = request.app[OWNERS]
    if forwarded(request):
        return None
    node = await owners.live_owner(call_id)
    if node is None or node == owners.node_id:
        return None
    return await pass_to(request, node)


async def pass_to(request: web.Request, node: str) -> web.Response:
    """Pass ``request`` to ``node`` and return its answer (503 with Retry-After when it cannot be reached)."""
    owners = request.app[OWNERS]
    base = await owners.internal_url(node)
    if base is None:
        raise retry_later(ApiError(503, "owner_unreachable",
                                   "the server holding this call is not reachable; try again shortly"), 2)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
    headers[FORWARDED] = owners.secret or "-"
    body = await request.read() if request.can_read_body else None
    try:
        async with request.app[_HTTP].request(request.method, base + request.path_qs, headers=headers,
                                              data=body, allow_redirects=False) as resp:
            data = await resp.read()
            back = {k: resp.headers[k] for k in _KEEP_BACK if k in resp.headers and k != "Content-Type"}
            return web.Response(status=resp.status, body=data, headers=back,
                                content_type=resp.content_type if "Content-Type" in resp.headers else None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("owners: %s %s not passed to %s: %s", request.method, request.path, node, exc)
        raise retry_later(ApiError(503, "owner_unreachable",
                                   "the server holding this call did not answer; try again shortly"), 2) from exc


def owned(handler: Handler) -> Handler:
    """``handler`` answered by the owner of the call named by the path's ``sid`` (or the customer's
    token): identity checks need its witness's live frames, and their evidence is kept where the
    checks that read it again run."""

    async def run(request: web.Request) -> web.StreamResponse:
        call_id = request.match_info.get("sid")
        if call_id is None and not forwarded(request):
            token = request.headers.get(CUSTOMER_HEADER, "")
            bound = await request.app[SIGNALING].store.token_call(token) if 0 < len(token) <= 200 else None
            call_id = bound.call_id if bound is not None else None
        if call_id is not None and (answer := await at_owner(request, call_id)) is not None:
            return answer
        return await handler(request)

    return run


def _client_ssl(settings: Settings) -> ssl.SSLContext | bool:
    """Nodes speak TLS to each other with the installation's CA when they serve HTTPS."""
    if not settings.tls:
        return True  # the default checks: used only for an https:// internal_url
    ca = CertPaths.in_dir(settings.cert_dir).ca_cert
    return ssl.create_default_context(cafile=str(ca)) if ca.exists() else ssl.create_default_context()


def setup(app: web.Application) -> None:
    """Component (after ``web.signaling_ws``, before ``web.recordings_api``): the client that passes
    requests on to other nodes, and this node's presence, said every few seconds."""
    settings = app[SETTINGS]

    async def start(app: web.Application) -> None:
        service, owners = app[SIGNALING], app[OWNERS]
        app[_HTTP] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT_S),
                                           connector=aiohttp.TCPConnector(ssl=_client_ssl(settings)),
                                           cookie_jar=aiohttp.DummyCookieJar())
        ttl = service.options.presence_ttl_s
        app[RATE_LIMIT_EXEMPT].append(from_node)
        with contextlib.suppress(*service.bus.unavailable):
            await owners.heartbeat(ttl)

        async def beat() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await owners.heartbeat(ttl)
                await asyncio.sleep(ttl / 3)

        app[_BEAT] = asyncio.create_task(beat(), name="owners-heartbeat")

    async def stop(app: web.Application) -> None:
        if _BEAT in app:
            app[_BEAT].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await app[_BEAT]
        if _HTTP in app:
            await app[_HTTP].close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
