"""JSON error responses with a stable code, a reason people can act on, and nothing internal."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, code: str, reason: str, **extra: Any) -> web.Response:
    """An error response: ``{"error": {"code": ..., "reason": ...}}``."""
    body = {"error": {"code": code, "reason": reason, **extra}}
    return web.json_response(body, status=status)


class ApiError(web.HTTPException):
    """Raise from a handler to answer with a JSON error."""

    def __init__(self, status: int, code: str, reason: str, **extra: Any) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": {"code": code, "reason": reason, **extra}}, ensure_ascii=False),
            content_type="application/json",
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn unexpected exceptions into a 500 with an id to quote, and HTTP errors on the API into JSON."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if request.path.startswith("/api/") and exc.status >= 400 and exc.content_type != "application/json":
            code = exc.reason.lower().replace(" ", "_")
            return json_error(exc.status, code, exc.text or exc.reason)
        raise
    except Exception:
        error_id = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", error_id, request.method, request.path)
        return json_error(500, "internal", f"something went wrong on our side; quote error id {error_id}")


async def read_body(request: web.Request, limit: int, too_large: str | None = None) -> bytes:
    """The whole request body, read to its end, refused with 413 as soon as it passes ``limit``.

    ``StreamReader.read(n)`` returns only what has arrived so far, so a large upload arriving in
    several packets must be read in a loop.
    """
    reason = too_large or f"body larger than {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", reason)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", reason)


async def read_json(request: web.Request, limit: int = 64 * 1024) -> Any:
    """The request body as JSON, refused clearly if too large or malformed."""
    raw = await read_body(request, limit)
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"body is not valid JSON: {exc}") from exc
