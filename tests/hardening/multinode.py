"""Helpers for the tests across ``counter serve`` nodes: a call accepted over the signaling socket,
staff requests with their CSRF header, waiting for a condition, closing the media and the nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from signaling import protocol as p
from signaling.client import SignalingClient

PHONE = "13800138000"


async def accepted_call(agent: SignalingClient, customer: SignalingClient, phone: str = PHONE) -> str:
    """The customer joins (claiming ``phone``), the agent goes available and accepts; the call id
    once both ends have been told the call started."""
    await customer.send(p.Join(claimed_phone=phone))
    await agent.send(p.Presence(state="available"))
    offer = await agent.expect(p.CallOffer, within=20)
    await agent.send(p.Accept(call_id=offer.call_id))
    await agent.expect(p.CallStarted, within=20, call_id=offer.call_id)
    await customer.expect(p.CallStarted, within=20, call_id=offer.call_id)
    return offer.call_id


async def csrf_header(staff: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """The logged-in staff session's CSRF header for the node at ``url``."""
    async with staff.get(url + "/api/auth/me") as resp:
        return {"X-CSRF-Token": (await resp.json())["csrf_token"]}


async def post_json(http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    """POST ``body``; the status and the JSON answer (a 503 must be the ``unavailable`` error with a Retry-After)."""
    async with http.post(url, json=body, headers=headers) as resp:
        data = await resp.json()
        if resp.status == 503:
            assert data["error"]["code"] == "unavailable" and int(resp.headers["Retry-After"]) > 0, data
        return resp.status, data


async def wait_until(predicate: Any, within: float = 20.0) -> None:
    """Poll ``predicate`` (a coroutine function) every 0.1 s until it is true; fail after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def close_media(senders: list[Any], clients: list[Any], *nodes: Any) -> None:
    """Close the witness senders, then the clients; stop the nodes."""
    for sender in senders:
        await sender.close()
    for client in clients:
        await client.close()
    for node in nodes:
        node.stop()
