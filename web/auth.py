"""Staff login with cookie sessions, CSRF protection and server-side role checks.

Handlers call :func:`require_role`; the page hiding a button is never the protection.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from counter.appkeys import GUARD, SETTINGS, USERS
from counter.audit import AUDIT, AuditEvent
from counter.guessing import LOGIN_ACCOUNT, LOGIN_ADDRESS
from counter.users import Role, User, WebSession
from web.errors import ApiError, Handler, read_json
from web.ratelimit import client_address

COOKIE = "rc_session"
CSRF_HEADER = "X-CSRF-Token"
_SESSION = web.RequestKey("web_session", WebSession)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_CSRF_EXEMPT = {"/api/auth/login"}


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role.value,
        "display_name": user.display_name,
        "skills": list(user.skills),
    }


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the logged-in staff session, if any, and enforce CSRF on state-changing API calls."""
    token = request.cookies.get(COOKIE)
    session = await request.app[USERS].session(token) if token else None
    if session is not None:
        request[_SESSION] = session
    if (
        session is not None
        and request.method in _UNSAFE
        and request.path.startswith("/api/")
        and request.path not in _CSRF_EXEMPT
        and request.headers.get(CSRF_HEADER) != session.csrf_token
    ):
        raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header; reload the page")
    return await handler(request)


def current_session(request: web.Request) -> WebSession | None:
    """The logged-in staff session of this request, or ``None``."""
    return request.get(_SESSION)


def require_role(request: web.Request, *roles: Role) -> WebSession:
    """The staff session, if its role is one of ``roles``; else 401 (not logged in) or 403."""
    session = current_session(request)
    if session is None:
        raise ApiError(401, "login_required", "log in first")
    if roles and session.user.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise ApiError(403, "forbidden", f"this needs the role {allowed}; you are {session.user.role.value}")
    return session


async def login(request: web.Request) -> web.Response:
    body = await read_json(request, limit=4096)
    if not isinstance(body, dict) or not isinstance(body.get("username"), str) or not isinstance(
        body.get("password"), str
    ):
        raise ApiError(400, "bad_request", "send {\"username\": ..., \"password\": ...}")
    users = request.app[USERS]
    username = body["username"][:100]
    await _refuse_if_locked(request, username)
    user = await users.authenticate(username, body["password"][:200])
    if user is None:
        await _count_failure(request, username)
        raise ApiError(401, "bad_credentials", "wrong user name or password")
    guard = request.app[GUARD]
    await guard.succeeded(LOGIN_ACCOUNT, username)
    await guard.remember(client_address(request), username)
    token, session = await users.open_session(user)
    response = web.json_response({"user": user_json(user), "csrf_token": session.csrf_token})
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        secure=request.app[SETTINGS].tls,
        samesite="Strict",
        path="/",
    )
    return response


def retry_later(error: ApiError, seconds: int) -> ApiError:
    """``error`` with a ``Retry-After`` header."""
    error.headers["Retry-After"] = str(seconds)
    return error


async def _refuse_if_locked(request: web.Request, username: str) -> None:
    """429 while the name is locked, or the address is and the name is not known from it."""
    guard, address = request.app[GUARD], client_address(request)
    wait = await guard.locked(LOGIN_ACCOUNT, username)
    if not wait and not await guard.known(address, username):
        wait = await guard.locked(LOGIN_ADDRESS, address)
    if wait:
        retry = max(1, math.ceil(wait))
        raise retry_later(ApiError(429, "login_locked", f"too many wrong passwords: try again in {retry} s",
                                   retry_after_s=retry), retry)


async def _count_failure(request: web.Request, username: str) -> None:
    """Count a wrong password against the name and the address; a lock it brings is audited."""
    guard, address = request.app[GUARD], client_address(request)
    for policy, key in ((LOGIN_ACCOUNT, username), (LOGIN_ADDRESS, address)):
        verdict = await guard.failed(policy, key)
        if verdict.locked_for_s:
            await request.app[AUDIT].append(AuditEvent(
                "auth.login_locked", "system", "system", outcome="refused",
                details={"by": policy.name, "failures": verdict.failures, "locked_for_s": verdict.locked_for_s},
                personal={"username": username, "address": address},
                reason="too many wrong passwords",
            ))


async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE)
    if token:
        await request.app[USERS].close_session(token)
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    session = require_role(request)
    return web.json_response({"user": user_json(session.user), "csrf_token": session.csrf_token})


def setup(app: web.Application) -> None:
    app.middlewares.append(session_middleware)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/auth/me", me)
