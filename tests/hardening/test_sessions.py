"""Session handling (ASVS V7) and authorization boundaries (V8) that the other suites do not cover."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from counter.appkeys import DB
from counter.config import Settings
from counter.users import _hash_token


def _cookie(client: TestClient[Any, Any]) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))["rc_session"].value


async def _login(client: TestClient[Any, Any], user: str = "agent1", password: str = "agent1-demo") -> str:
    resp = await client.post("/api/auth/login", json={"username": user, "password": password})
    assert resp.status == 200
    return _cookie(client)


async def test_logout_revokes_the_token_server_side(app_client: TestClient[Any, Any]) -> None:
    resp = await app_client.post("/api/auth/login", json={"username": "agent1", "password": "agent1-demo"})
    csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
    token = _cookie(app_client)
    assert (await app_client.post("/api/auth/logout")).status == 403  # logout needs CSRF too
    assert (await app_client.post("/api/auth/logout", headers=csrf)).status == 200
    app_client.session.cookie_jar.clear()
    resp = await app_client.get("/api/auth/me", cookies={"rc_session": token})
    assert resp.status == 401  # a copied cookie is dead after logout, not just deleted in the browser


async def test_login_always_issues_a_fresh_token_and_ignores_a_planted_one(app_client: TestClient[Any, Any]) -> None:
    planted = "attacker-chosen-token-value-0123456789"
    app_client.session.cookie_jar.update_cookies({"rc_session": planted})
    first = await _login(app_client)
    second = await _login(app_client)
    assert planted not in (first, second) and first != second and len(first) >= 43  # 256-bit urlsafe
    app_client.session.cookie_jar.clear()
    assert (await app_client.get("/api/auth/me", cookies={"rc_session": planted})).status == 401


async def test_tokens_are_stored_only_as_hashes_and_expire(app_client: TestClient[Any, Any]) -> None:
    token = await _login(app_client)
    db = app_client.app[DB]
    rows = await db.fetch("SELECT token_hash FROM web_sessions")
    assert token not in {r["token_hash"] for r in rows} and _hash_token(token) in {r["token_hash"] for r in rows}
    await db.execute("UPDATE web_sessions SET expires_at = $2 WHERE token_hash = $1", _hash_token(token),
                     "2000-01-01T00:00:00+00:00")
    assert (await app_client.get("/api/auth/me")).status == 401


async def test_a_customer_join_token_opens_no_staff_door(app_client: TestClient[Any, Any]) -> None:
    join = await (await app_client.post("/api/customer/join", json={})).json()
    token = join["token"]
    for headers, cookies in (({"X-Customer-Token": token}, {}), ({}, {"rc_session": token})):
        for path in ("/api/auth/me", "/api/audit/entries", "/api/supervisor/queue", "/api/consoles/home"):
            resp = await app_client.get(path, headers=headers, cookies=cookies)
            assert resp.status == 401, (path, resp.status)


async def test_csrf_token_is_per_session(app_client: TestClient[Any, Any]) -> None:
    r1 = await app_client.post("/api/auth/login", json={"username": "agent1", "password": "agent1-demo"})
    csrf1 = (await r1.json())["csrf_token"]
    app_client.session.cookie_jar.clear()
    await _login(app_client, "agent2", "agent2-demo")
    resp = await app_client.post("/api/counter/sessions", json={"call_id": "x"}, headers={"X-CSRF-Token": csrf1})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf"


async def test_a_disabled_account_loses_its_sessions_at_once(app_client: TestClient[Any, Any]) -> None:
    await _login(app_client)
    assert (await app_client.get("/api/auth/me")).status == 200
    await app_client.app[DB].execute("UPDATE users SET active = 0 WHERE username = $1", "agent1")
    assert (await app_client.get("/api/auth/me")).status == 401
    resp = await app_client.post("/api/auth/login", json={"username": "agent1", "password": "agent1-demo"})
    assert resp.status == 401


async def test_logins_logouts_and_refusals_are_logged(app_client: TestClient[Any, Any],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="security")
    assert (await app_client.post("/api/auth/login", json={"username": "agent1", "password": "nope"})).status == 401
    resp = await app_client.post("/api/auth/login", json={"username": "agent1", "password": "agent1-demo"})
    csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
    assert (await app_client.get("/api/audit/entries")).status == 403
    assert (await app_client.post("/api/auth/logout", headers=csrf)).status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "security"]
    assert [line.split(" {")[0] for line in lines] == [
        "auth.login refused by system:unknown", "auth.login ok by agent:agent1",
        "authz.refused refused by agent:agent1", "auth.logout ok by agent:agent1",
    ]


async def test_security_events_can_go_to_the_audit_log(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp.test_utils import TestServer

    from counter.app import build_app
    from counter.audit import AUDIT

    settings = settings.model_copy(update={"audit_security_events": True})
    app_client = TestClient(TestServer(await build_app(settings)))
    await app_client.start_server()
    audit = app_client.app[AUDIT]
    assert (await app_client.post("/api/auth/login", json={"username": "agent1", "password": "nope"})).status == 401
    resp = await app_client.post("/api/auth/login", json={"username": "agent1", "password": "agent1-demo"})
    csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
    assert (await app_client.get("/api/audit/entries")).status == 403  # an agent at the auditors' door
    assert (await app_client.post("/api/auth/logout", headers=csrf)).status == 200
    logins = [e["entry"] for e in await audit.search(action="auth.login")]
    assert [(e["outcome"], e["actor_id"]) for e in logins][-2:] == [("refused", "unknown"), ("ok", "agent1")]
    refused = [e["entry"] for e in await audit.search(action="authz.refused")]
    assert refused and refused[-1]["actor_id"] == "agent1" and refused[-1]["details"]["code"] == "forbidden"
    assert (await audit.search(action="auth.logout"))[-1]["entry"]["actor_id"] == "agent1"
    await app_client.close()


async def test_logout_closes_the_staff_signaling_socket(app_client: TestClient[Any, Any]) -> None:
    import aiohttp

    from signaling import protocol as p
    from signaling.client import SignalingClient

    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        agent = await SignalingClient.staff(http, base, "agent1", "agent1-demo")
        async with http.get(base + "/api/auth/me") as resp:
            csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
        async with http.post(base + "/api/auth/logout", headers=csrf) as resp:
            assert resp.status == 200
        assert (await agent.expect(p.Notice, code="logged_out")).text
        with pytest.raises(Exception, match="clos"):  # "connection closed" or "closing transport"
            await agent.send(p.Presence(state="available"))
            while True:
                await agent.recv(within=5)
        await agent.close()
