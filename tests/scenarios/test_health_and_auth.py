"""Health, security headers, login, CSRF and role checks over real HTTP."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from counter.appkeys import DB, NOT_READY
from counter.audit import AUDIT
from counter.guessing import LOGIN_ACCOUNT, LOGIN_ADDRESS
from tests.conftest import login
from web.ratelimit import RATE_LIMITS


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


async def _try(client: TestClient[Any, Any], username: str, password: str) -> tuple[int, str | None]:
    resp = await client.post("/api/auth/login", json={"username": username, "password": password})
    body = await resp.json()
    if resp.status == 429:
        assert int(resp.headers["Retry-After"]) >= 1
    return resp.status, (body.get("error") or {}).get("code")


async def _audit_bodies(client: TestClient[Any, Any], action: str) -> list[str]:
    audit = client.app[AUDIT]
    await audit.flush()
    return [r["body"] for r in await client.app[DB].fetch("SELECT body FROM audit_entries WHERE action = $1",
                                                          action)]


async def test_login_backs_off_per_account_not_for_colleagues(app_client: TestClient[Any, Any]) -> None:
    """Wrong passwords for one account lock that account (even the right password waits), audited;
    a colleague behind the same address still logs in."""
    for _ in range(LOGIN_ACCOUNT.free):
        assert await _try(app_client, "agent2", "guess") == (401, "bad_credentials")
    assert await _try(app_client, "agent2", "agent2-demo") == (429, "login_locked")
    assert await _try(app_client, "agent1", "agent1-demo") == (200, None)
    bodies = await _audit_bodies(app_client, "auth.login_locked")
    assert len(bodies) == 1 and "login_account" in bodies[0] and "agent2" not in bodies[0]


async def test_an_address_guessing_many_names_is_held_back_but_not_its_known_users(
        app_client: TestClient[Any, Any]) -> None:
    limits = app_client.app[RATE_LIMITS]
    limits.rules = tuple(r for r in limits.rules if r.name != "login")  # the token bucket aside
    assert await _try(app_client, "agent1", "agent1-demo") == (200, None)  # agent1 works from here
    for i in range(LOGIN_ADDRESS.free):
        assert await _try(app_client, f"name{i}", "guess") == (401, "bad_credentials")
    assert await _try(app_client, "agent2", "agent2-demo") == (429, "login_locked")
    assert await _try(app_client, "agent1", "agent1-demo") == (200, None)
    assert any("login_address" in b for b in await _audit_bodies(app_client, "auth.login_locked"))
