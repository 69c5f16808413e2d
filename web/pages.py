"""The browser pages and the static assets.

Every page shares one head (language, viewport, title, stylesheets, one module script); only its
body differs, kept as markup in ``web/markup/<name>.html``.  A staff page's body marks with
``<!--#account-->`` where the signed-in user and the log-out button go.  The pages carry no inline
script or style: the Content-Security-Policy (:mod:`web.security`) forbids both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from html import escape
from pathlib import Path

from aiohttp import web

from web.errors import Handler

STATIC = Path(__file__).parent / "static"
MARKUP = Path(__file__).parent / "markup"
ACCOUNT = "<!--#account-->"
ACCOUNT_MARKUP = '<span id="me"></span>\n  <button type="button" id="btn-logout">退出 Log out</button>'
_STAFF_CSS = ("/static/login/staff.css",)
_CUSTOMER_CSS = "/static/customer/customer.css"


@dataclass(frozen=True)
class Page:
    """One page: its title, what its head loads, and the class of its body.

    ``mobile`` pages fill a phone's screen edge to edge (``viewport-fit=cover``) and tint the
    browser's bar in the counter's blue.
    """

    title: str
    script: str | None = None
    styles: tuple[str, ...] = ()
    body_class: str | None = None
    mobile: bool = False


#: The pages by name (their markup file); :data:`ROUTES` says where each is served.
PAGES: dict[str, Page] = {
    "index": Page("远程柜台 Remote Counter"),
    "customer": Page("远程视频柜台", "/static/customer/main.js", (_CUSTOMER_CSS,), mobile=True),
    "helper": Page("亲情协助", "/static/helper/main.js", (_CUSTOMER_CSS, "/static/helper/helper.css"), mobile=True),
    "login": Page("员工登录 Staff login · 远程柜台", "/static/login/login.js", _STAFF_CSS, "login"),
    "agent": Page("坐席工作台 Agent console · 远程柜台", "/static/agent/main.js", _STAFF_CSS, "agent"),
    "supervisor": Page("班长监控 Supervisor wall · 远程柜台", "/static/supervisor/main.js", _STAFF_CSS, "supervisor"),
    "auditor": Page("审计 Auditor console · 远程柜台", "/static/auditor/main.js", _STAFF_CSS, "auditor"),
}
#: URL -> page name; ``/login`` is served by :mod:`web.consoles_api`, which first sends a
#: signed-in user on to their console.
ROUTES = {
    "/": "index",
    "/customer": "customer",
    "/helper": "helper",
    "/agent": "agent",
    "/supervisor": "supervisor",
    "/auditor": "auditor",
}


@functools.cache
def render(name: str) -> str:
    """The whole HTML document of page ``name`` (read and built once: the markup ships with the code)."""
    page = PAGES[name]
    viewport = "width=device-width, initial-scale=1" + (", viewport-fit=cover" if page.mobile else "")
    head = [
        '<meta charset="utf-8">',
        f'<meta name="viewport" content="{viewport}">',
        *(['<meta name="theme-color" content="#0b3d91">'] if page.mobile else []),
        f"<title>{escape(page.title)}</title>",
        *(f'<link rel="stylesheet" href="{escape(href)}">' for href in page.styles),
        *([f'<script type="module" src="{escape(page.script)}"></script>'] if page.script else []),
    ]
    body_class = f' class="{escape(page.body_class)}"' if page.body_class else ""
    body = (MARKUP / f"{name}.html").read_text(encoding="utf-8").replace(ACCOUNT, ACCOUNT_MARKUP)
    return (
        "\n".join(["<!doctype html>", '<html lang="zh-CN">', "<head>", *head, "</head>", f"<body{body_class}>"])
        + f"\n{body}</body>\n</html>\n"
    )


def page_response(name: str) -> web.Response:
    """Page ``name`` as a response; browsers revalidate it so a deploy shows at once."""
    return web.Response(
        text=render(name), content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"}
    )


def _page(name: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return page_response(name)

    return handler


def setup(app: web.Application) -> None:
    """Serve the pages at their URLs and the assets under ``/static/``."""
    for path, name in ROUTES.items():
        app.router.add_get(path, _page(name))
    app.router.add_static("/static/", STATIC, append_version=False)
