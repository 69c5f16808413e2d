"""Every API route under /api/, called by every role: the roles not in its row are refused server-side.

The table names who may call each route.  Routes added later without a row are still checked:
an anonymous caller must be refused unless the route is customer-facing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.calls import live_call
from tests.conftest import login

STAFF = {"agent", "supervisor", "auditor"}
PUBLIC = {"anonymous", *STAFF}
#: (method, path) -> roles allowed.  "customer" means the X-Customer-Token of a counter session.
ROLES: dict[tuple[str, str], set[str]] = {
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/logout"): PUBLIC,
    ("GET", "/api/auth/me"): STAFF,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("POST", "/api/customer/join"): PUBLIC,
    ("GET", "/api/supervisor/staffing"): {"supervisor"},
    ("GET", "/api/supervisor/kpis"): {"supervisor"},
    ("POST", "/api/customer/hold/return"): PUBLIC,
    ("POST", "/api/customer/callbacks"): PUBLIC,
    ("GET", "/api/consoles/callbacks"): {"agent", "supervisor"},
    ("POST", "/api/consoles/callbacks/{cid}/start"): {"agent", "supervisor"},
    ("POST", "/api/consoles/callbacks/{cid}/outcome"): {"agent", "supervisor"},
    ("GET", "/api/audit/checkpoint/latest"): PUBLIC,
    ("GET", "/api/audit/entries"): {"auditor", "supervisor"},
    ("GET", "/api/audit/entries/{seq}"): {"auditor", "supervisor"},
    ("GET", "/api/audit/proof/inclusion"): {"auditor", "supervisor"},
    ("GET", "/api/audit/proof/consistency"): {"auditor", "supervisor"},
    ("POST", "/api/audit/verify"): {"auditor"},
    ("GET", "/api/audit/export"): {"auditor"},
    ("POST", "/api/counter/sessions"): {"agent", "supervisor"},
    ("GET", "/api/counter/catalog"): STAFF,
    ("GET", "/api/counter/guidance/scripts"): STAFF,
    ("GET", "/api/counter/approvals"): {"supervisor"},
    ("POST", "/api/counter/approvals/{tid}"): {"supervisor"},
    ("GET", "/api/counter/workorders"): {"agent", "supervisor"},
    ("POST", "/api/counter/workorders/{wid}/status"): {"agent", "supervisor"},
    ("POST", "/api/counter/workorders/{wid}/callback"): {"agent", "supervisor"},
    ("GET", "/api/customer/counter"): {"customer"},
    ("POST", "/api/customer/counter/transactions/{tid}/confirm"): {"customer"},
    ("POST", "/api/customer/counter/rating"): {"customer"},
    ("POST", "/api/customer/helper/invite"): {"customer"},
    ("POST", "/api/helper/join"): PUBLIC,  # the invitation code is the credential
    ("POST", "/api/helper/start"): PUBLIC,  # a helper who comes first: a new call, like /api/customer/join
    ("POST", "/api/customer/holder/join"): PUBLIC,  # the holder link's code is the credential
    ("GET", "/api/supervisor/metrics"): {"supervisor"},
    ("GET", "/api/supervisor/queue"): {"supervisor"},
    ("GET", "/api/consoles/home"): STAFF,
    ("GET", "/api/consoles/wrap-ups"): {"agent", "supervisor"},
    ("GET", "/api/consoles/queue"): {"agent", "supervisor"},
    ("GET", "/api/consoles/kpis"): {"supervisor"},
    ("GET", "/api/consoles/sessions/{sid}"): {"auditor"},
}
#: Every route of one agent's counter session: the agent who owns it (or a supervisor who opened one).
SESSION_ROUTE = re.compile(r"^/api/counter/sessions/\{sid\}")
REFUSALS = {"login_required", "forbidden", "not_your_session", "customer_token"}
USERS = {
    "agent": ("agent1", "agent1-demo"),
    "supervisor": ("super1", "super1-demo"),
    "auditor": ("audit1", "audit1-demo"),
}
Callers = dict[str, tuple[TestClient[Any, Any], dict[str, str]]]
SAMPLE = {"sid": "no-such-session", "tid": "1", "wid": "1", "seq": "1", "rid": "1"}


def allowed(method: str, path: str) -> set[str] | None:
    if (method, path) in ROLES:
        return ROLES[(method, path)]
    if SESSION_ROUTE.match(path):
        return {"agent", "supervisor"}
    return None


def api_routes(client: TestClient[Any, Any]) -> list[tuple[str, str]]:
    out = set()
    for route in client.app.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if canonical.startswith("/api/") and route.method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            out.add((route.method, canonical))
    return sorted(out)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "1"), path)


@pytest.fixture
async def callers(app_client: TestClient[Any, Any]) -> AsyncIterator[Callers]:
    """One client (own cookie jar) per role, logged in, with its CSRF header."""
    out: Callers = {"anonymous": (app_client, {})}
    extra = []
    for role, (user, password) in USERS.items():
        client: TestClient[Any, Any] = TestClient(app_client.server)
        extra.append(client)
        out[role] = (client, await login(client, user, password))
    yield out
    for client in extra:
        await client.session.close()


async def call(client: TestClient[Any, Any], method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    kwargs: dict[str, Any] = {"headers": headers}
    if method != "GET":
        kwargs["json"] = {}
    resp = await client.request(method, path, **kwargs)
    try:
        code = (await resp.json()).get("error", {}).get("code", "")
    except Exception:
        code = ""
    return resp.status, code


async def test_every_api_route_refuses_the_roles_not_in_its_row(
    app_client: TestClient[Any, Any], callers: Callers
) -> None:
    routes = api_routes(app_client)
    assert ("GET", "/api/consoles/kpis") in routes and ("POST", "/api/audit/verify") in routes
    problems = []
    checked = 0
    for method, path in routes:
        if path in ("/api/auth/login", "/api/auth/logout"):
            continue  # would log the caller in or out
        roles = allowed(method, path)
        url = concrete(path)
        if path == "/api/counter/workorders":
            url += "?session=no-such-session"
        for role, (client, headers) in callers.items():
            if roles is None and role != "anonymous":
                continue  # unknown route: only the anonymous check below
            status, code = await call(client, method, url, headers)
            checked += 1
            may = roles is not None and role in roles
            refused = status in (401, 403) and code in REFUSALS
            if roles is None and not path.startswith("/api/customer/") and not refused:
                problems.append(f"{method} {path}: anonymous got {status} {code} (route not in the table)")
            elif roles is not None and may and refused:
                problems.append(f"{method} {path}: {role} is allowed but got {status} {code}")
            elif roles is not None and not may and not refused:
                problems.append(f"{method} {path}: {role} must be refused but got {status} {code}")
    assert checked > 80
    assert not problems, "\n".join(problems)


async def test_agent_cannot_read_an_account_outside_their_session(
    app_client: TestClient[Any, Any], callers: Callers
) -> None:
    agent1, h1 = callers["agent"]
    base = str(app_client.make_url(""))
    async with (
        live_call(base, "agent2", claimed_phone="13900139000") as b,
        live_call(base, "agent1", claimed_phone="13800138000") as a,
    ):
        assert (await b.staff("GET", f"/api/counter/sessions/{b.call_id}/account"))[0] == 200
        # agent1's own session, with another line claimed: only that line is readable.
        own = await (await agent1.get(f"/api/counter/sessions/{a.call_id}/account")).json()
        assert own["msisdn"] == "13800138000" and "*" in own["holder"]["id_number"]
        sid = b.call_id
        for method, path in [
            ("GET", f"/api/counter/sessions/{sid}/account"),
            ("GET", f"/api/counter/sessions/{sid}"),
            ("GET", f"/api/counter/catalog?session={sid}"),
            ("GET", f"/api/counter/workorders?session={sid}"),
            ("POST", f"/api/counter/sessions/{sid}/transactions"),
            ("POST", f"/api/counter/sessions/{sid}/claim"),
        ]:
            status, code = await call(agent1, method, path, h1)
            assert (status, code) == (403, "not_your_session"), (method, path, status, code)
        # A supervisor is not the session's agent either; auditors read accounts only through the audit log.
        sup, hs = callers["supervisor"]
        assert await call(sup, "GET", f"/api/counter/sessions/{sid}/account", hs) == (403, "not_your_session")
        aud, ha = callers["auditor"]
        assert await call(aud, "GET", f"/api/counter/sessions/{sid}/account", ha) == (403, "forbidden")


async def test_csrf_header_is_required_for_state_changes(
    callers: Callers,
) -> None:
    agent, _ = callers["agent"]
    resp = await agent.post("/api/counter/sessions", json={"call_id": "call-c"}, headers={"X-CSRF-Token": "wrong"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf"
