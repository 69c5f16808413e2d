"""Every browser page is served whole from one head and its own body markup, CSP-clean."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from web.pages import ACCOUNT, MARKUP, PAGES, ROUTES, render


def test_every_markup_file_is_a_page() -> None:
    assert {path.stem for path in MARKUP.glob("*.html")} == set(PAGES)
    assert set(ROUTES.values()) | {"login"} == set(PAGES)


def test_staff_pages_carry_the_account_controls() -> None:
    for name in ("agent", "supervisor", "auditor"):
        html = render(name)
        assert ACCOUNT not in html
        assert html.count('id="me"') == 1 and html.count('id="btn-logout"') == 1, name


async def test_pages_are_served_whole_and_csp_clean(app_client: TestClient[Any, Any]) -> None:
    for url, name in [*ROUTES.items(), ("/login", "login")]:
        resp = await app_client.get(url, allow_redirects=False)
        assert resp.status == 200, url
        assert resp.content_type == "text/html" and resp.charset == "utf-8"
        assert resp.headers["Cache-Control"] == "no-cache"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        html = await resp.text()
        assert html == render(name)
        assert html.startswith('<!doctype html>\n<html lang="zh-CN">') and html.endswith("</body>\n</html>\n")
        page = PAGES[name]
        assert f"<title>{page.title}</title>" in html
        if page.script:
            assert f'<script type="module" src="{page.script}"></script>' in html
            assert (await app_client.get(page.script)).status == 200, page.script
        for href in page.styles:
            assert (await app_client.get(href)).status == 200, href
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], f"{url}: inline script"
        assert "<style" not in html and " style=" not in html, f"{url}: inline style"
        ids = re.findall(r'\bid="([^"]+)"', html)
        assert len(ids) == len(set(ids)), f"{url}: repeated ids"
