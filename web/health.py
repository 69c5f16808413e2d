"""``/healthz`` (the process is up) and ``/readyz`` (the database answers, models loaded or why not)."""

from __future__ import annotations

from aiohttp import web

from counter.appkeys import DB, NOT_READY
from storage import DatabaseError


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    not_ready: dict[str, str] = request.app[NOT_READY]
    problems = dict(not_ready)
    try:
        await request.app[DB].ping()
    except DatabaseError as exc:
        problems["database"] = str(exc)
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
