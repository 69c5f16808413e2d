"""Routes that describe themselves, and the OpenAPI document made from them.

A module declares its routes on an :class:`ApiRoutes` (an aiohttp ``RouteTableDef`` that also keeps
each route's body model and summary); :func:`openapi` turns the described routes into OpenAPI 3.1,
with schemas generated from the pydantic models and the transaction catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from counter.transactions import CATALOG
from web.errors import Handler

CUSTOMER_HEADER = "X-Customer-Token"


@dataclass(frozen=True)
class Described:
    """One route as the OpenAPI document shows it."""

    method: str
    path: str
    handler: Handler
    model: type[BaseModel] | None
    summary: str


class ApiRoutes:
    """A ``RouteTableDef`` whose routes also say their body model and what they are for."""

    def __init__(self) -> None:
        self.table = web.RouteTableDef()
        self.described: list[Described] = []

    def route(self, method: str, path: str, summary: str,
              model: type[BaseModel] | None = None) -> Callable[[Handler], Handler]:
        """Declare ``handler`` as ``method path``."""

        def declare(handler: Handler) -> Handler:
            self.described.append(Described(method, path, handler, model, summary))
            self.table.route(method, path)(handler)
            return handler

        return declare

    def get(self, path: str, summary: str) -> Callable[[Handler], Handler]:
        """Declare a ``GET`` route."""
        return self.route("GET", path, summary)

    def post(self, path: str, summary: str, model: type[BaseModel] | None = None) -> Callable[[Handler], Handler]:
        """Declare a ``POST`` route taking ``model`` as its JSON body."""
        return self.route("POST", path, summary, model)


_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ERRORS = {
    str(status): {"description": text, "content": _ERROR_BODY}
    for status, text in (
        (400, "bad input (error.errors lists the fields)"),
        (401, "not logged in / no valid customer token"),
        (403, "wrong role, another agent's session, wrong password or code, missing CSRF header"),
        (404, "no such session, transaction request or work order"),
        (409, "refused in this state (error.reason says why and what to do)"),
    )
}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "reason"],
            "properties": {"code": {"type": "string"}, "reason": {"type": "string"}},
            "additionalProperties": True,
        }
    },
}


def _operation(route: Described, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary, "responses": {"200": {"description": "OK"}, **_ERRORS}}
    params = [p.strip("{}") for p in route.path.split("/") if p.startswith("{")]
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    if route.model is not None:
        name = route.model.__name__
        schemas[name] = route.model.model_json_schema(ref_template="#/components/schemas/{model}")
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    op["security"] = [{"customerToken": []}] if route.path.startswith("/api/customer") else [{"staffCookie": []}]
    return op


def openapi(routes: Iterable[Described], title: str) -> dict[str, Any]:
    """OpenAPI 3.1 for ``routes``, plus the document's own route and the catalog's input schemas."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    paths["/api/openapi.json"] = {
        "get": {"summary": "anyone: this document", "responses": {"200": {"description": "OpenAPI 3.1"}}}
    }
    schemas["Error"] = _ERROR_SCHEMA
    for spec in CATALOG.values():
        schemas["Tx_" + spec.code.replace(".", "_")] = {
            **spec.inputs.model_json_schema(),
            "title": f"{spec.code}: {spec.title_en}",
            "x-level": str(spec.level),
            "x-changes-state": spec.changes_state,
        }
    for schema in list(schemas.values()):
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "staffCookie": {"type": "apiKey", "in": "cookie", "name": "rc_session"},
                "customerToken": {"type": "apiKey", "in": "header", "name": CUSTOMER_HEADER},
            },
        },
    }
