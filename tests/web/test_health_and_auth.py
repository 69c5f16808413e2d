"""Health, security headers, login, CSRF and role checks over real HTTP."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from counter.appkeys import NOT_READY
from tests.conftest import login


async def test_health_and_ready(app_client: TestClient[Any, Any]) -> None:
    assert (await (await app_client.get("/healthz")).json()) == {"status": "ok"}
    assert (await (await app_client.get("/readyz")).json()) == {"status": "ready"}
    app_client.server.app[NOT_READY]["models"] = "face_detection_yunet_2023mar.onnx missing"
    resp = await app_client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["problems"]["models"].startswith("face_detection")


async def test_security_headers(app_client: TestClient[Any, Any]) -> None:
    resp = await app_client.get("/")
    assert resp.status == 200
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    missing = await app_client.get("/api/nothing-here")
    assert missing.status == 404 and "Content-Security-Policy" in missing.headers
    assert (await missing.json())["error"]["code"] == "not_found"


async def test_login_me_logout(app_client: TestClient[Any, Any]) -> None:
    assert (await app_client.get("/api/auth/me")).status == 401
    bad = await app_client.post("/api/auth/login", json={"username": "agent1", "password": "nope-nope"})
    assert bad.status == 401 and (await bad.json())["error"]["code"] == "bad_credentials"
    headers = await login(app_client, "agent1", "agent1-demo")
    me = await (await app_client.get("/api/auth/me")).json()
    assert me["user"]["role"] == "agent" and "care" in me["user"]["skills"]
    assert (await app_client.post("/api/auth/logout")).status == 403  # no CSRF token
    assert (await app_client.post("/api/auth/logout", headers=headers)).status == 200
    assert (await app_client.get("/api/auth/me")).status == 401


async def test_malformed_login_bodies(app_client: TestClient[Any, Any]) -> None:
    for body in (b"{", b"[]", b'{"username": 1}', b"x" * 10000):
        resp = await app_client.post("/api/auth/login", data=body, headers={"Content-Type": "application/json"})
        assert resp.status in (400, 413)
        assert "error" in await resp.json()
