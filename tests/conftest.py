"""Shared fixtures: a real database on both back-ends, settings in a temporary directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from counter.config import Settings, load_settings
from storage import Database, migrate, open_database

if TYPE_CHECKING:
    from aiohttp.test_utils import TestClient

PG_URL = os.environ.get("COUNTER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FACES = SHARED / "faces"
#: The portrait on the synthetic ID cards of the web and at-rest tests.
CARD_PORTRAIT = FACES / "faceonnx" / "nicole_kidman" / "nicole_1.jpg"


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL on each back-end: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?schema={schema}"
    await _drop_schema(schema)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database on each back-end."""
    database = await open_database(db_url)
    await migrate(database)
    yield database
    await database.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an in-process test server: plain HTTP, data in a temporary directory.

    Of the environment only the tuning groups pass (``COUNTER_SIGNALING_*`` and ``COUNTER_HOLD_*``
    shorten timings, ``COUNTER_RATELIMIT_*`` lifts limits: fixtures set them), and the models folder."""
    return load_settings(
        config_file=tmp_path / "none.toml",
        environ={k: v for k, v in os.environ.items()
                 if k.startswith(("COUNTER_SIGNALING_", "COUNTER_HOLD_", "COUNTER_RATELIMIT_"))
                 or k == "COUNTER_MODELS_DIR"},
        tls=False,
        host="127.0.0.1",
        port=8443,
        data_dir=tmp_path / "data",
        cert_dir=tmp_path / "certs",
        demo_faces_dir=FACES if FACES.is_dir() else None,
        # Most tests place calls without a witness leg; the recording rule has its own tests.
        require_recording=False,
    )


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The whole application (SQLite, demo data) behind an in-process test client."""
    from aiohttp.test_utils import TestClient, TestServer

    from counter.app import build_app

    app = await build_app(settings)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def login(client: TestClient[Any, Any], username: str, password: str) -> dict[str, str]:
    """Log a demo user in; return the headers (CSRF token) for state-changing calls."""
    resp = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return {"X-CSRF-Token": body["csrf_token"]}
