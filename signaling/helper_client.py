"""Client side of helpers (家属), for tests and probes: a witness-aware signaling client that also
understands ``helper_state``, and the helper's own way in (redeem an invitation, say hello)."""

from __future__ import annotations

from typing import Any, ClassVar, cast

import aiohttp
from pydantic import TypeAdapter

from signaling.client import ClientError
from signaling.helpers import HelperState
from signaling.witness.client import WitnessClient
from signaling.witness.relay import WitnessSdp, WitnessState

_SERVER = TypeAdapter[WitnessSdp | WitnessState | HelperState](WitnessSdp | WitnessState | HelperState)


class HelperClient(WitnessClient):
    """A :class:`WitnessClient` that also parses ``helper_state`` (for the holder, the agent and the helper)."""

    extra: ClassVar[TypeAdapter[Any]] = _SERVER

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
