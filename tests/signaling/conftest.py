"""Signaling fixtures: short timings, loopback-only WebRTC, and clients on a real test server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from signaling import protocol as p
from signaling.client import SignalingClient
from signaling.peer import loopback_only

loopback_only()

FAST = {
    "COUNTER_SIGNALING_OFFER_TIMEOUT_S": "0.6",
    "COUNTER_SIGNALING_STATUS_INTERVAL_S": "0.2",
    "COUNTER_SIGNALING_TICK_S": "0.1",
    "COUNTER_SIGNALING_RECONNECT_GRACE_S": "5",
}

REDIS_URL = os.environ.get("COUNTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")

STAFF = {
    "agent1": "agent1-demo",
    "agent2": "agent2-demo",
    "super1": "super1-demo",
}


async def drop_keys(prefix: str) -> None:
    """Delete every key under ``prefix`` in the test Redis."""
    client = aioredis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A Redis key prefix for this test only; its keys are deleted afterwards."""
    name = f"rctest-{uuid.uuid4().hex[:10]}"
    yield name
    await drop_keys(name)


async def available(agent: SignalingClient, skills: list[str] | None = None) -> None:
    """The agent goes available (with ``skills``, if given) and the server has acknowledged it."""
    await agent.send(p.Presence(state="available", skills=skills))
    await agent.expect(p.PresenceAck)


async def offered(connect: Connect, user: str = "agent1") -> tuple[SignalingClient, SignalingClient, p.CallOffer]:
    """``user`` available, then a new customer joins: the agent, the customer and the agent's offer."""
    agent = await connect(user)
    await available(agent)
    customer = await connect()
    await customer.send(p.Join())
    return agent, customer, await agent.expect(p.CallOffer)


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
