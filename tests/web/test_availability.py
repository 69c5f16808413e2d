"""A PostgreSQL connection dropped under a running app: 503 with Retry-After and a JSON reason, for
reads and writes alike, never a 500; back to normal once the database answers again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from counter.app import build_app
from counter.config import Settings
from tests.conftest import PG_URL, _drop_schema, login
from tests.dbproxy import DbProxy


@pytest.fixture
async def proxied(settings: Settings) -> AsyncIterator[tuple[TestClient[Any, Any], DbProxy]]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    proxy = DbProxy(PG_URL)
    await proxy.start()
    app = await build_app(settings.model_copy(update={"database_url": f"{proxy.url}?schema={schema}"}))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, proxy
    finally:
        await proxy.restore()
        await client.close()
        await proxy.close()
        await _drop_schema(schema)


async def test_database_connection_dropped_is_503_with_retry_after(
    proxied: tuple[TestClient[Any, Any], DbProxy],
) -> None:
    client, proxy = proxied
    auditor = await login(client, "audit1", "audit1-demo")
    assert (await client.get("/api/audit/entries?limit=1")).status == 200
    await proxy.drop()
    for method, path, body in (
        ("GET", "/api/audit/entries?limit=1", None),
        ("GET", "/api/audit/entries/1", None),
        ("POST", "/api/audit/verify", None),
        ("POST", "/api/customer/join", {}),
    ):
        resp = await client.request(method, path, json=body, headers=auditor)
        data = await resp.json()
        assert resp.status == 503, (path, data)
        assert data["error"]["code"] == "unavailable" and int(resp.headers["Retry-After"]) > 0
    await proxy.restore()
    assert (await client.get("/api/audit/entries?limit=1")).status == 200


async def test_a_conflicting_write_that_escapes_a_handler_is_409_not_500() -> None:
    from aiohttp import web

    from storage import IntegrityError
    from web.availability import availability_middleware
    from web.errors import error_middleware

    async def racing(request: web.Request) -> web.Response:
        raise IntegrityError("duplicate key value violates unique constraint")

    app = web.Application(middlewares=[error_middleware, availability_middleware])
    app.router.add_post("/api/race", racing)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.post("/api/race")
        assert resp.status == 409 and (await resp.json())["error"]["code"] == "conflict"
    finally:
        await client.close()
