"""Real calls for tests: a customer joins over the signaling socket and an agent accepts it.

A counter session exists only for a call an agent accepted and that is connected, so every test
that needs a session places one the way the product does (:func:`live_call`), through the project's
own :class:`signaling.client.SignalingClient`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aiohttp

from signaling import protocol as p
from signaling.client import ClientError, SignalingClient, connect_call


@dataclass
class LiveCall:
    """A connected call: its id, the customer's join token and both ends' sockets and HTTP sessions."""

    call_id: str
    token: str
    base_url: str
    customer: SignalingClient
    agent: SignalingClient
    phone_http: aiohttp.ClientSession
    staff_http: aiohttp.ClientSession
    csrf: dict[str, str]

    @property
    def customer_headers(self) -> dict[str, str]:
        """What the customer's page sends to the customer counter API."""
        return {"X-Customer-Token": self.token}

    def url(self, path: str) -> str:
        return self.base_url + path

    async def staff(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """A staff API call as the accepting agent (CSRF header added); ``(status, JSON or text)``."""
        headers = {**self.csrf, **kwargs.pop("headers", {})}
        async with self.staff_http.request(method, self.url(path), headers=headers, **kwargs) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body

    async def phone(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """A customer API call with this call's join token; ``(status, JSON or text)``."""
        headers = {**self.customer_headers, **kwargs.pop("headers", {})}
        async with self.phone_http.request(method, self.url(path), headers=headers, **kwargs) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body

    async def hang_up(self) -> None:
        """The customer hangs up; returns once the agent has been told the call ended."""
        await self.customer.send(p.Hangup())
        await self.agent.expect(p.CallEnded, call_id=self.call_id)


@asynccontextmanager
async def live_call(
    base_url: str,
    agent: str = "agent1",
    password: str | None = None,
    *,
    claimed_phone: str | None = None,
    face_consent: bool | None = None,
    care: bool = False,
    ssl: bool = True,
    client: type[SignalingClient] = SignalingClient,
) -> AsyncIterator[LiveCall]:
    """Place a call to ``base_url`` and have ``agent`` (demo password by default) accept it.

    ``client``: the sockets' class (a :class:`~signaling.witness.client.WitnessClient` to talk to the
    witness too).  The customer hangs up when the block ends, unless the call ended already.
    """
    base = base_url.rstrip("/")
    connector = None if ssl else aiohttp.TCPConnector(ssl=False)
    staff_connector = None if ssl else aiohttp.TCPConnector(ssl=False)
    async with (
        aiohttp.ClientSession(connector=connector) as phone_http,
        aiohttp.ClientSession(connector=staff_connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff_http,
    ):
        customer = await client.customer(phone_http, base, care=care)
        try:
            staff = await client.staff(staff_http, base, agent, password or f"{agent}-demo")
        except BaseException:
            await customer.close()
            raise
        try:
            assert customer.token is not None
            join = p.Join(care=care, claimed_phone=claimed_phone, face_consent=face_consent)
            call_id = await connect_call(customer, staff, join)
            async with staff_http.get(base + "/api/auth/me") as resp:
                csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
            call = LiveCall(call_id, customer.token, base, customer, staff, phone_http, staff_http, csrf)
            yield call
            if not customer.closed:
                with suppress(ClientError, ConnectionError):
                    await customer.send(p.Hangup())
                    await staff.expect(p.CallEnded, call_id=call_id, within=5.0)
        finally:
            await customer.close()
            await staff.close()
