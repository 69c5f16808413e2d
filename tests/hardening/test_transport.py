"""Transport and headers: TLS only with HSTS, a strict CSP on every answer, the WebSocket Origin
allow-list, per-route rate limits (429 + Retry-After), request size limits on every API family, and
short-lived TURN credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from counter.config import Settings, load_settings
from signaling import protocol as p
from signaling.client import SignalingClient
from signaling.ice import ice_servers
from tests.calls import live_call
from tests.conftest import login
from web.ratelimit import RATE_LIMITS, RateLimits

STRICT_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}


def _csp(header: str) -> dict[str, str]:
    return {part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()}


def assert_strict_headers(headers: Any) -> None:
    csp = _csp(headers["Content-Security-Policy"])
    for directive, value in STRICT_CSP.items():
        assert csp[directive] == value, (directive, csp)
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.fixture
async def tls_url(settings: Settings) -> AsyncIterator[str]:
    """The whole app served over TLS on a real socket (its own certificates in the temp dir)."""
    from counter.app import build_app
    from counter.serve import ssl_context

    tls = settings.model_copy(update={"tls": True})
    app = await build_app(tls)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context(tls))
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}"
    await runner.cleanup()


async def test_tls_only_with_hsts_strict_csp_and_secure_cookie(tls_url: str) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        for path in ("/customer", "/agent", "/api/auth/me", "/no-such-page", "/healthz"):
            async with http.get(tls_url + path) as resp:
                assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000"), path
                assert_strict_headers(resp.headers)
        creds = {"username": "agent1", "password": "agent1-demo"}
        async with http.post(tls_url + "/api/auth/login", json=creds) as resp:
            assert resp.status == 200
            cookie = resp.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # Plain HTTP on the TLS port gets nothing (no downgrade).
        with pytest.raises(aiohttp.ClientError):
            async with http.get(tls_url.replace("https", "http") + "/healthz") as resp:
                await resp.read()


async def test_plain_http_test_server_has_strict_csp_but_no_hsts(app_client: TestClient[Any, Any]) -> None:
    resp = await app_client.get("/customer")
    assert_strict_headers(resp.headers)
    assert "Strict-Transport-Security" not in resp.headers  # HSTS only means something over TLS


async def test_websocket_upgrade_checks_origin(app_client: TestClient[Any, Any], settings: Settings) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        token = (await (await http.post(base + "/api/customer/join", json={})).json())["token"]
        for origin in ("https://evil.example", "null", f"https://{app_client.host}.evil.example"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await SignalingClient.connect(http, base, token, origin=origin)
            assert refused.value.status == 403, origin
        same = await SignalingClient.connect(http, base, token, origin=base)
        assert same.welcome is not None and same.welcome.role == "customer"
        await same.close()


async def test_configured_origin_is_allowed(settings: Settings) -> None:
    from aiohttp.test_utils import TestServer

    from counter.app import build_app

    app = await build_app(settings.model_copy(update={"allowed_origins": ["https://counter.example.cn"]}))
    async with TestClient(TestServer(app)) as client, aiohttp.ClientSession() as http:
        base = str(client.make_url("")).rstrip("/")
        token = (await (await http.post(base + "/api/customer/join", json={})).json())["token"]
        ok = await SignalingClient.connect(http, base, token, origin="https://counter.example.cn")
        await ok.close()
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await SignalingClient.connect(http, base, token, origin="https://counter.example.com")


def _limit(client: TestClient[Any, Any], **env: str) -> None:
    client.app[RATE_LIMITS].rules = RateLimits.from_settings(env).rules


async def _assert_429(resp: aiohttp.ClientResponse, limit: str) -> None:
    assert resp.status == 429, await resp.text()
    retry = int(resp.headers["Retry-After"])
    assert retry >= 1
    body = await resp.json()
    assert body["error"]["code"] == "rate_limited" and body["error"]["limit"] == limit
    assert f"try again in {retry} s" in body["error"]["reason"]
    assert_strict_headers(resp.headers)


async def test_join_is_rate_limited_per_address(app_client: TestClient[Any, Any]) -> None:
    _limit(app_client, join="0.01/3")
    for _ in range(3):
        assert (await app_client.post("/api/customer/join", json={})).status == 200
    await _assert_429(await app_client.post("/api/customer/join", json={}), "join")


async def test_login_is_rate_limited_per_address(app_client: TestClient[Any, Any]) -> None:
    _limit(app_client, login="0.01/4")
    for _ in range(4):
        resp = await app_client.post("/api/auth/login", json={"username": "agent1", "password": "guess"})
        assert resp.status == 401
    # Even the right password is refused while the address is over its limit: guessing stays slow.
    await _assert_429(
        await app_client.post("/api/auth/login", json={"username": "agent1", "password": "agent1-demo"}), "login"
    )


async def test_api_calls_are_limited_per_session_not_only_per_address(app_client: TestClient[Any, Any]) -> None:
    csrf1 = await login(app_client, "agent1", "agent1-demo")
    cookie1 = app_client.session.cookie_jar.filter_cookies(app_client.make_url("/"))["rc_session"].value
    _limit(app_client, api="1000/1000,0.01/3")
    for _ in range(3):
        resp = await app_client.post("/api/counter/sessions", json={"call_id": ""}, headers=csrf1)
        assert resp.status == 400
    await _assert_429(await app_client.post("/api/counter/sessions", json={"call_id": ""}, headers=csrf1), "api")
    # Another staff session from the same address still gets through.
    app_client.session.cookie_jar.clear()
    csrf2 = await login(app_client, "agent2", "agent2-demo")
    assert (await app_client.post("/api/counter/sessions", json={"call_id": ""}, headers=csrf2)).status == 400
    assert cookie1 != app_client.session.cookie_jar.filter_cookies(app_client.make_url("/"))["rc_session"].value


async def test_identity_and_verification_endpoints_are_limited_per_session(app_client: TestClient[Any, Any]) -> None:
    _limit(app_client, identity="1000/1000,0.01/2", verify="1000/1000,0.01/2")
    for path in ("/api/counter/sessions/s1/identity/face", "/api/counter/sessions/s1/verify-password"):
        for _ in range(2):
            assert (await app_client.post(path, data=b"x")).status == 401
        resp = await app_client.post(path, data=b"x")
        await _assert_429(resp, "identity" if "identity" in path else "verify")
        # The bucket is the session in the path: another session is not held back.
        assert (await app_client.post(path.replace("s1", "s2"), data=b"x")).status == 401


async def test_websocket_connections_are_rate_limited(app_client: TestClient[Any, Any]) -> None:
    _limit(app_client, ws="0.01/2")
    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        opened = []
        for _ in range(2):
            token = (await (await http.post(base + "/api/customer/join", json={})).json())["token"]
            opened.append(await SignalingClient.connect(http, base, token))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await SignalingClient.connect(http, base, token)
        assert refused.value.status == 429
        assert refused.value.headers is not None and int(refused.value.headers["Retry-After"]) >= 1
        for client in opened:
            await client.close()


async def test_signaling_messages_are_rate_limited_per_connection(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        client = await SignalingClient.customer(http, base)
        try:
            for i in range(200):
                await client.send(p.Ping(ref=str(i)))
            error = await client.expect(p.ErrorMsg, code="rate_limited", within=10)
            assert "slow down" in error.reason
        finally:
            await client.close()


def test_rate_limits_from_settings_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="COUNTER_RATELIMIT_JOIN"):
        RateLimits.from_settings({"join": "fast"})
    with pytest.raises(ValueError, match="COUNTER_RATELIMIT_JION: no such rule"):
        RateLimits.from_settings({"jion": "1/2"})
    settings = load_settings(tmp_path / "none.toml", environ={"COUNTER_RATELIMIT_LOGIN": "off",
                                                              "COUNTER_RATELIMIT_JOIN": "3/9,1/2"})
    limits = RateLimits.from_settings(settings.ratelimit)
    fallback = limits.rule_for("POST", "/api/auth/login")
    assert fallback is not None and fallback.name == "api"  # the general API rule still applies
    join = limits.rule_for("POST", "/api/customer/join")
    assert join is not None and (join.ip.rate, join.ip.burst) == (3, 9) and join.session is not None


def test_bucket_table_is_bounded() -> None:
    limits = RateLimits(max_buckets=100)
    rule = limits.rule_for("POST", "/api/customer/join")
    assert rule is not None
    for i in range(1000):
        limits.take(rule, rule.ip, f"ip:10.0.{i // 256}.{i % 256}", now=float(i))
    assert len(limits) <= 100


# --- request size limits ------------------------------------------------------------------------------


async def _oversize(client: TestClient[Any, Any], path: str, size: int, headers: dict[str, str] | None = None,
                    content_type: str = "application/json") -> None:
    resp = await client.post(path, data=b"{" + b" " * size + b"}", headers={**(headers or {}),
                                                                          "Content-Type": content_type})
    assert resp.status == 413, (path, resp.status, await resp.text())
    body = await resp.json()
    assert body["error"]["code"] == "too_large", body


async def test_every_api_family_refuses_oversize_bodies(app_client: TestClient[Any, Any]) -> None:
    await _oversize(app_client, "/api/auth/login", 5000)
    await _oversize(app_client, "/api/customer/join", 5000)
    csrf = await login(app_client, "agent1", "agent1-demo")
    await _oversize(app_client, "/api/counter/sessions", 70 * 1024, csrf)
    # A session exists only for a call the agent accepted; then its endpoints and the customer's
    # (with the join token of that call) refuse oversize bodies too.
    async with live_call(str(app_client.make_url(""))) as call:
        sid = call.call_id
        await _oversize(app_client, f"/api/counter/sessions/{sid}/transactions", 70 * 1024, csrf)
        await _oversize(app_client, f"/api/counter/sessions/{sid}/claim", 70 * 1024, csrf)
        app_client.session.cookie_jar.clear()
        await _oversize(app_client, "/api/customer/counter/rating", 70 * 1024, call.customer_headers)


async def test_websocket_frames_are_size_limited(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        client = await SignalingClient.customer(http, base)
        try:
            await client.send('{"type":"ping","ref":"' + "x" * (p.MAX_MESSAGE_BYTES + 10) + '"}')
            error = await client.expect(p.ErrorMsg, within=10)
            assert error.code in ("too_large", "invalid"), error
            await client.ws.send_str("x" * (300 * 1024))  # past the hard frame limit: connection closed
            with pytest.raises(Exception, match="closed"):
                while True:
                    await client.recv(within=10)
            assert client.ws.close_code == 1009
        finally:
            await client.close()


# --- TURN ---------------------------------------------------------------------------------------------------


def test_turn_credentials_are_short_lived_and_bound_to_the_user() -> None:
    now = 1_800_000_000.0
    servers = ice_servers([], ["turn:127.0.0.1:3478"], "s3cret", "customer:c1", 600, now=now)
    (turn,) = servers
    assert turn.username is not None and turn.credential is not None
    expiry, user = turn.username.split(":", 1)
    assert int(expiry) == int(now) + 600 and user == "customer:c1"
    expected = base64.b64encode(hmac.new(b"s3cret", turn.username.encode(), hashlib.sha1).digest()).decode()
    assert turn.credential == expected
    assert "s3cret" not in turn.model_dump_json()
    assert ice_servers([], ["turn:127.0.0.1:3478"], "", "customer:c1", 600) == []  # no secret: no TURN at all


async def test_welcome_carries_ttl_bounded_turn_credentials(settings: Settings) -> None:
    from aiohttp.test_utils import TestServer

    from counter.app import build_app

    app = await build_app(settings.model_copy(update={"turn_urls": ["turn:127.0.0.1:3478"], "turn_secret": "k",
                                                      "turn_ttl_s": 300}))
    async with TestClient(TestServer(app)) as client, aiohttp.ClientSession() as http:
        customer = await SignalingClient.customer(http, str(client.make_url("")).rstrip("/"))
        try:
            assert customer.welcome is not None and customer.welcome.ice_ttl_s == 300
            turn = next(s for s in customer.welcome.ice_servers if s.username)
            assert turn.username is not None
            assert 0 < int(turn.username.split(":")[0]) - time.time() <= 300
        finally:
            await customer.close()


async def test_behind_a_trusted_balancer_each_client_has_its_own_limit(settings: Settings) -> None:
    from aiohttp.test_utils import TestServer

    from counter.app import build_app

    # Every request reaches the node from the balancer's address (here 127.0.0.1): without
    # ``trusted_proxies`` all customers would share one join limit, and with it a client's own header
    # is still ignored unless it came through the balancer.
    app = await build_app(settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]}))
    async with TestClient(TestServer(app)) as client:
        _limit(client, join="0.01/2")
        def xff(addr: str) -> dict[str, str]:
            return {"X-Forwarded-For": f"{addr}, 127.0.0.1"}

        for _ in range(2):
            assert (await client.post("/api/customer/join", json={}, headers=xff("203.0.113.5"))).status == 200
        await _assert_429(await client.post("/api/customer/join", json={}, headers=xff("203.0.113.5")), "join")
        assert (await client.post("/api/customer/join", json={}, headers=xff("198.51.100.7"))).status == 200
    app = await build_app(settings)  # no balancer configured: the header is the client's to forge
    async with TestClient(TestServer(app)) as client:
        _limit(client, join="0.01/2")
        for addr in ("203.0.113.5", "198.51.100.7"):
            assert (await client.post("/api/customer/join", json={}, headers=xff(addr))).status == 200
        await _assert_429(await client.post("/api/customer/join", json={}, headers=xff("192.0.2.1")), "join")
