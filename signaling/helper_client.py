"""Client side of helpers (家属), for tests and probes: a witness-aware signaling client that also
understands ``helper_state``, and the helper's own way in (redeem an invitation, say hello)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiohttp
from pydantic import TypeAdapter, ValidationError

from signaling import protocol as p
from signaling.client import ClientError
from signaling.helpers import HelperState
from signaling.witness.client import WitnessClient
from signaling.witness.relay import WitnessSdp, WitnessState

_SERVER = TypeAdapter[WitnessSdp | WitnessState | HelperState](WitnessSdp | WitnessState | HelperState)


class HelperClient(WitnessClient):
    """A :class:`WitnessClient` that also parses ``helper_state`` (for the holder, the agent and the helper)."""

    async def _read(self) -> None:
        inbox = cast("asyncio.Queue[Any]", self.inbox)
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        await inbox.put(p.parse_server(msg.data))
                    except ValueError:
                        try:
                            await inbox.put(_SERVER.validate_json(msg.data))
                        except ValidationError:
                            await inbox.put(p.ErrorMsg(code="client_parse", reason=str(msg.data)[:200]))
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            await inbox.put(None)

    @classmethod
    async def helper(cls, http: aiohttp.ClientSession, base_url: str, code: str) -> HelperClient:
        """Redeem the invitation ``code`` (``POST /api/helper/join``) and say hello as the call's helper."""
        async with http.post(base_url.rstrip("/") + "/api/helper/join", json={"code": code}) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise ClientError(f"helper join refused: HTTP {resp.status} {body.get('code')}")
        client = cast("HelperClient", await cls.connect(http, base_url, token=body["token"]))
        client.token = body["token"]
        return client
