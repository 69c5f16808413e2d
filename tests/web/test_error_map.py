"""The errors of the layers below answered in one place: each listed type gets its status and code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from counter.guidance import GuidanceError
from counter.sessions import SessionError, SessionNotFound
from counter.smscode import SmsCodeError
from counter.transactions.engine import TxError
from counter.workorders import WorkOrderError
from identity.images import ImageError
from identity.liveness import UnusableReference
from signaling.witness import WitnessError
from signaling.witness.recording import RecordingError, SegmentTampered
from web.error_map import domain_error_middleware
from web.errors import error_middleware

CASES: dict[str, tuple[Exception, int, str]] = {
    "session": (SessionError("the call has ended", "call_ended"), 409, "call_ended"),
    "session_subclass": (SessionNotFound("no such session"), 409, "session"),
    "wrong_code": (SmsCodeError("wrong_code", "that is not the code", attempts_left=2), 403, "wrong_code"),
    "code_expired": (SmsCodeError("expired", "ask for a new code"), 409, "expired"),
    "tx": (TxError(422, "refused", "not allowed on this line"), 422, "refused"),
    "work_order": (WorkOrderError("already closed"), 409, "work_order"),
    "guidance": (GuidanceError("no such step"), 409, "guidance"),
    "witness": (WitnessError("no_media", "no video yet"), 409, "no_media"),
    "image": (ImageError("not a JPEG or PNG"), 400, "bad_image"),
    "reference": (UnusableReference("no face on file"), 409, "no_reference"),
    "recording": (SegmentTampered("segment 3 does not verify"), 410, "unreadable"),
    "recording_base": (RecordingError("gone"), 410, "unreadable"),
}


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    async def raising(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "bug":
            raise KeyError("a bug")
        raise CASES[name][0]

    app = web.Application(middlewares=[error_middleware, domain_error_middleware])
    app.router.add_get("/api/raise/{name}", raising)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize("name", sorted(CASES))
async def test_each_listed_error_has_its_answer(client: TestClient[Any, Any], name: str) -> None:
    _, status, code = CASES[name]
    resp = await client.get(f"/api/raise/{name}")
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code and body["error"]["reason"]


async def test_wrong_code_says_attempts_left(client: TestClient[Any, Any]) -> None:
    body = await (await client.get("/api/raise/wrong_code")).json()
    assert body["error"]["attempts_left"] == 2


async def test_an_unlisted_error_stays_a_500_with_an_id(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/raise/bug")
    assert resp.status == 500 and (await resp.json())["error"]["code"] == "internal"
