"""A Python client of the signaling protocol (aiohttp), for tests, benchmarks and ``counter probe call``.

::

    async with aiohttp.ClientSession() as http:
        customer = await SignalingClient.customer(http, "http://127.0.0.1:8443", care=True)
        await customer.send(protocol.Join(care=True))
        status = await customer.expect("queue_status")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel

from signaling import protocol as p

M = TypeVar("M", bound=BaseModel)


class ClientError(Exception):
    """The server refused something or did not answer in time; the message says which."""


class SignalingClient:
    """One WebSocket to ``/ws``: send messages, wait for the next message of a type."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, welcome: p.Welcome | None = None) -> None:
        self.ws = ws
        self.welcome = welcome
        self.inbox: asyncio.Queue[p.ServerMessage | None] = asyncio.Queue()
        self.history: list[p.ServerMessage] = []
        self._reader = asyncio.create_task(self._read())

    # connecting -----------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, base_url: str, token: str | None = None, origin: str | None = None,
        within: float = 10.0, staff_cookie: str | None = None,
    ) -> SignalingClient:
        """Open ``/ws`` and say hello (with a customer ``token``, or as the logged-in staff of ``http``, or
        of ``staff_cookie``: the ``rc_session`` value, for many staff sharing one ``http`` session)."""
        url = base_url.rstrip("/").replace("http", "ws", 1) + "/ws"
        headers = {"Origin": origin} if origin else {}
        if staff_cookie:
            headers["Cookie"] = f"rc_session={staff_cookie}"
        ws = await http.ws_connect(url, headers=headers, max_msg_size=p.MAX_MESSAGE_BYTES * 4, heartbeat=20.0)
        client = cls(ws)
        await client.send(p.Hello(token=token, client="signaling.client"))
        client.welcome = await client.expect(p.Welcome, within=within)
        return client

    @classmethod
    async def customer(cls, http: aiohttp.ClientSession, base_url: str, care: bool = False) -> SignalingClient:
        """A new anonymous customer: get a join token, connect, say hello (not yet in the queue)."""
        token = await join_token(http, base_url, care)
        client = await cls.connect(http, base_url, token["token"])
        client.token = token["token"]
        return client

    @classmethod
    async def staff(
        cls, http: aiohttp.ClientSession, base_url: str, username: str, password: str
    ) -> SignalingClient:
        """Log ``username`` in on ``http`` (its cookie jar keeps the session) and connect."""
        async with http.post(base_url.rstrip("/") + "/api/auth/login",
                             json={"username": username, "password": password}) as resp:
            if resp.status != 200:
                raise ClientError(f"login as {username} failed: HTTP {resp.status} {await resp.text()}")
        return await cls.connect(http, base_url)

    token: str | None = None

    # messages -------------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        await self.inbox.put(p.parse_server(msg.data))
                    except ValueError:
                        await self.inbox.put(p.ErrorMsg(code="client_parse", reason=str(msg.data)[:200]))
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            await self.inbox.put(None)

    async def send(self, message: BaseModel | dict[str, Any] | str) -> None:
        """Send a protocol model, a plain dict, or raw text (tests send garbage this way)."""
        if isinstance(message, BaseModel):
            text = p.dump(message)
        elif isinstance(message, dict):
            text = json.dumps(message)
        else:
            text = message
        await self.ws.send_str(text)

    async def recv(self, within: float = 10.0) -> p.ServerMessage:
        """The next message; :class:`ClientError` if the connection closed or none came in time."""
        try:
            message = await asyncio.wait_for(self.inbox.get(), within)
        except TimeoutError:
            raise ClientError(f"no message within {within} s") from None
        if message is None:
            self.inbox.put_nowait(None)
            raise ClientError(f"connection closed (code {self.ws.close_code})")
        self.history.append(message)
        return message

    async def expect(self, kind: type[M], /, within: float = 10.0, **fields: Any) -> M:
        """Skip messages until one of ``kind`` (whose ``fields`` match) arrives; raise on ``error``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            message = await self.recv(max(0.0, deadline - loop.time()))
            if isinstance(message, p.ErrorMsg) and kind is not p.ErrorMsg:
                raise ClientError(f"server error {message.code}: {message.reason}")
            if isinstance(message, kind) and all(getattr(message, k) == v for k, v in fields.items()):
                return message

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    @property
    def closed(self) -> bool:
        return self.ws.closed


async def join_token(http: aiohttp.ClientSession, base_url: str, care: bool = False) -> dict[str, Any]:
    """``POST /api/customer/join``: a fresh anonymous token and its call id."""
    async with http.post(base_url.rstrip("/") + "/api/customer/join", json={"care": care}) as resp:
        if resp.status != 200:
            raise ClientError(f"customer join failed: HTTP {resp.status} {await resp.text()}")
        body: dict[str, Any] = await resp.json()
        return body


async def connect_call(customer: SignalingClient, agent: SignalingClient, join: p.Join, within: float = 15.0) -> str:
    """Queue ``customer`` (connected, not yet queued) with ``join`` and have ``agent`` go available and
    accept that call (declining any other offered first); return the call id once both ends are told."""
    if customer.welcome is None or customer.welcome.call_id is None:
        raise ClientError("connect the customer with a join token first")
    call_id = customer.welcome.call_id
    await customer.send(join)
    await customer.expect(p.QueueStatus, within=within)
    await agent.send(p.Presence(state="available"))
    while True:
        offer = await agent.expect(p.CallOffer, within=within)
        if offer.call_id == call_id:
            break
        await agent.send(p.Decline(call_id=offer.call_id, reason="waiting for another call"))
    await agent.send(p.Accept(call_id=call_id))
    await agent.expect(p.CallStarted, within=within, call_id=call_id)
    await customer.expect(p.CallStarted, within=within, call_id=call_id)
    return call_id
