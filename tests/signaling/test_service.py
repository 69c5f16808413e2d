"""The service's typed extension point for extra message types (what the witness uses), over a real socket."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter

from signaling import protocol as p
from signaling.aio import SIGNALING
from signaling.client import SignalingClient
from signaling.service import Connection
from tests.signaling.conftest import Connect


class Shout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["test_shout"] = "test_shout"
    ref: str | None = None
    text: str


async def test_extra_messages_get_the_core_rules(app_client: Any, connect: Connect, base_url: str) -> None:
    service = app_client.app[SIGNALING]
    heard: list[tuple[str | None, str]] = []

    async def handler(conn: Connection, message: Shout) -> None:
        if message.text == "refuse":
            raise p.ProtocolError("forbidden", "not this one", message.ref)
        heard.append((conn.principal.key if conn.principal else None, message.text))

    service.add_messages(["test_shout"], TypeAdapter(Shout), handler)
    with pytest.raises(ValueError, match="handled already"):
        service.add_messages(["test_shout"], TypeAdapter(Shout), handler)
    with pytest.raises(ValueError, match="handled already"):
        service.add_messages(["chat"], TypeAdapter(Shout), handler)

    import aiohttp

    async with aiohttp.ClientSession() as http:
        raw = await http.ws_connect(base_url + "/ws")
        await raw.send_str('{"type": "test_shout", "text": "early", "ref": "r0"}')
        error = p.parse_server((await raw.receive()).data)
        assert isinstance(error, p.ErrorMsg) and (error.code, error.ref) == ("hello_first", "r0")
        await raw.close()

    customer: SignalingClient = await connect()
    await customer.send({"type": "test_shout", "text": "hello"})
    await customer.send({"type": "test_shout", "text": 5, "ref": "r1"})
    error = await customer.expect(p.ErrorMsg)
    assert (error.code, error.ref) == ("invalid", "r1") and "text" in error.reason
    await customer.send({"type": "test_shout", "text": "refuse", "ref": "r2"})
    error = await customer.expect(p.ErrorMsg)
    assert (error.code, error.ref) == ("forbidden", "r2")
    await customer.send({"type": "test_nobody", "ref": "r3"})
    assert (await customer.expect(p.ErrorMsg)).code == "unknown_type"
    await customer.send("{}")
    assert (await customer.expect(p.ErrorMsg)).code == "unknown_type"
    await customer.send(p.Ping(ref="r4"))
    await customer.expect(p.Pong, ref="r4")  # core messages untouched, and the line stays open
    assert heard == [(f"customer:{customer.welcome.id if customer.welcome else ''}", "hello")]
