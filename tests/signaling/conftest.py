"""Signaling fixtures: short timings, loopback-only WebRTC, and clients on a real test server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from signaling.client import SignalingClient
from signaling.peer import loopback_only

loopback_only()

FAST = {
    "COUNTER_SIGNALING_OFFER_TIMEOUT_S": "0.6",
    "COUNTER_SIGNALING_STATUS_INTERVAL_S": "0.2",
    "COUNTER_SIGNALING_TICK_S": "0.1",
    "COUNTER_SIGNALING_RECONNECT_GRACE_S": "5",
}

STAFF = {
    "agent1": "agent1-demo",
    "agent2": "agent2-demo",
    "super1": "super1-demo",
}


@pytest.fixture(autouse=True)
def fast_signaling(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)


Connect = Callable[..., Awaitable[SignalingClient]]


@pytest.fixture
async def base_url(app_client: TestClient[Any, Any]) -> str:
    return str(app_client.server.make_url("")).rstrip("/")


@pytest.fixture
async def connect(base_url: str) -> AsyncIterator[Connect]:
    """``await connect("agent1")`` (logged in) or ``await connect(care=True)`` (a new customer)."""
    sessions: list[aiohttp.ClientSession] = []
    clients: list[SignalingClient] = []

    async def _connect(user: str | None = None, care: bool = False, url: str | None = None) -> SignalingClient:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        if user is None:
            client = await SignalingClient.customer(http, url or base_url, care=care)
        else:
            client = await SignalingClient.staff(http, url or base_url, user, STAFF[user])
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.close()
    for http in sessions:
        await http.close()
