"""Request bodies are read to their end, whatever packets they arrive in, and refused past the limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from web.errors import error_middleware, read_body, read_json


async def trickle(data: bytes, piece: int = 997) -> AsyncIterator[bytes]:
    """Send ``data`` in small pieces with pauses, as a phone on a slow network does."""
    for i in range(0, len(data), piece):
        yield data[i : i + piece]
        await asyncio.sleep(0)


async def client() -> TestClient[Any, Any]:
    async def echo_len(request: web.Request) -> web.Response:
        return web.json_response({"n": len(await read_body(request, 200_000))})

    async def echo_json(request: web.Request) -> web.Response:
        return web.json_response({"keys": sorted(await read_json(request, limit=200_000))})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/api/len", echo_len)
    app.router.add_post("/api/json", echo_json)
    c: TestClient[Any, Any] = TestClient(TestServer(app))
    await c.start_server()
    return c


async def test_chunked_upload_is_read_whole() -> None:
    c = await client()
    try:
        data = bytes(range(256)) * 600  # 153,600 bytes, sent without a Content-Length
        resp = await c.post("/api/len", data=trickle(data))
        assert resp.status == 200 and (await resp.json())["n"] == len(data)
        doc = json.dumps({f"k{i}": "x" * 50 for i in range(2000)}).encode()
        resp = await c.post("/api/json", data=trickle(doc), headers={"Content-Type": "application/json"})
        assert resp.status == 200 and len((await resp.json())["keys"]) == 2000
    finally:
        await c.close()


async def test_chunked_body_over_the_limit_is_refused() -> None:
    c = await client()
    try:
        resp = await c.post("/api/len", data=trickle(b"x" * 250_000))
        assert resp.status == 413 and (await resp.json())["error"]["code"] == "too_large"
        resp = await c.post("/api/len", data=b"x" * 250_000)  # declared Content-Length
        assert resp.status == 413
    finally:
        await c.close()
