"""Static pages and assets."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from web.errors import Handler

STATIC = Path(__file__).parent / "static"
PAGES = {
    "/": "index.html",
    "/customer": "customer.html",
    "/helper": "helper.html",
    "/agent": "agent.html",
    "/supervisor": "supervisor.html",
    "/auditor": "auditor.html",
}


def _page(name: str) -> Handler:
    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

    return handler


def setup(app: web.Application) -> None:
    for path, name in PAGES.items():
        if (STATIC / name).exists():
            app.router.add_get(path, _page(name))
    app.router.add_static("/static/", STATIC, append_version=False)
