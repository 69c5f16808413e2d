"""JSON request bodies checked against pydantic models, refused in one error shape.

A body that does not fit its model is ``400 bad_request`` with ``error.errors`` listing each field and
what is wrong with it, and ``error.reason`` saying the same in one line.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from web.errors import ApiError, read_json

M = TypeVar("M", bound=BaseModel)


class StrictBody(BaseModel):
    """A request body that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")


async def parse_body(request: web.Request, model: type[M], limit: int = 64 * 1024) -> M:
    """The request's JSON body as ``model``, or :class:`ApiError` 400 naming the fields at fault."""
    try:
        return model.model_validate(await read_json(request, limit))
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        reason = "; ".join(f"{e['field']}: {e['error']}" for e in errors)
        raise ApiError(400, "bad_request", reason, errors=errors) from None
