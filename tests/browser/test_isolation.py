"""The browser tests' network: the app, Chromium and the agent's aiortc peer see loopback only."""

from __future__ import annotations

import asyncio

from tests.browser.harness import BrowserEnv


def test_only_loopback_is_reachable(env: BrowserEnv) -> None:
    async def links() -> str:
        proc = await asyncio.create_subprocess_exec("ip", "-o", "link", stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return out.decode()

    names = [line.split(":")[1].strip() for line in env.run(links()).splitlines()]
    assert names == ["lo"], names
    assert env.base_url.startswith("http://127.0.0.1:")
