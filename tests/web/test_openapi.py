"""Every route the counter API's modules (web.counter_api, _agent, _customer, _work) register under /api/ is in the
OpenAPI document web.counter_api serves, and back."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from web import counter_agent, counter_api, counter_customer, counter_work

MODULES = {m.__name__ for m in (counter_agent, counter_api, counter_customer, counter_work)}


async def test_every_counter_route_is_documented(app_client: TestClient[Any, Any]) -> None:
    registered = set()
    for route in app_client.app.router.routes():
        handler = route.handler
        path = route.resource.canonical if route.resource is not None else ""
        if getattr(handler, "__module__", None) in MODULES and path.startswith("/api/"):
            if route.method != "HEAD":
                registered.add((route.method.lower(), path))
    assert len(registered) >= 24, registered  # (the agent-sent-hash attestation route is gone)
    resp = await app_client.get("/api/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert registered - documented == set(), "routes missing from /api/openapi.json"
    assert documented - registered == set(), "documented routes that are not registered"
    assert ("post", "/api/counter/sessions/{sid}/verify-sms-code") in documented
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in body:
                assert body["$ref"].rsplit("/", 1)[1] in spec["components"]["schemas"], (method, path)
            assert op["summary"], (method, path)
