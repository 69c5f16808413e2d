"""Identity API on a live call: frames the witness takes from a stream made of a real face photo."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from counter.appkeys import IDENTITY, NOT_READY
from counter.audit import AUDIT
from signaling import protocol as p
from signaling.peer import loopback_only
from signaling.witness.client import WitnessClient, WitnessSender
from tests.conftest import FACES
from tests.signaling.witnessing import PhotoVideo
from tests.web.live import NICOLE, Live, ready
from tests.web.live import models as models  # autouse: skip without the shared models

loopback_only()
OBAMA = "13900139000"


@pytest.fixture
async def live(app_client: TestClient[Any, Any]) -> AsyncIterator[Live]:
    """agent1 in a call with a customer whose camera films nicole_1.jpg, witness connected, session open."""
    base = str(app_client.server.make_url("")).rstrip("/")
    await ready(app_client)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http, \
            aiohttp.ClientSession() as customer_http:
        agent = await WitnessClient.staff(http, base, "agent1", "agent1-demo")
        customer = await WitnessClient.customer(customer_http, base)
        assert isinstance(agent, WitnessClient) and isinstance(customer, WitnessClient)
        await customer.consent_to_recording()
        await agent.send(p.Presence(state="available"))
        await customer.send(p.Join())
        offer = await agent.expect(p.CallOffer)
        await agent.send(p.Accept(call_id=offer.call_id))
        await customer.expect(p.CallStarted)
        sender = WitnessSender(PhotoVideo(FACES / "faceonnx/nicole_kidman/nicole_1.jpg"))
        await sender.connect(customer, offer.call_id)
        async with http.get(f"{base}/api/auth/me") as resp:
            csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
        async with http.post(f"{base}/api/counter/sessions", json={"call_id": offer.call_id}, headers=csrf) as resp:
            assert resp.status in (200, 201), await resp.text()  # opened when the agent accepted
        assert customer.token is not None
        yield Live(http, base, offer.call_id, csrf, customer.token)
        await sender.close()
        await agent.close()
        await customer.close()


async def test_live_face_matches_the_holder_and_not_another(app_client: TestClient[Any, Any], live: Live) -> None:
    status, body = await live.post("/identity/face", json={"source": "live"})
    assert status == 409 and body["error"]["code"] == "no_account"
    await live.post("/claim", json={"msisdn": OBAMA})
    await live.post("/consent", json={"face_consent": True})
    status, body = await live.post("/identity/face", json={"source": "live"})
    assert status == 200, body
    assert body["result"]["decision"] == "no_match" and body["session"]["level"] == "A0"

    await live.post("/claim", json={"msisdn": NICOLE})
    status, body = await live.post("/identity/face", json={"source": "live"})
    assert status == 200, body
    assert body["result"]["decision"] == "match", body["result"]
    assert body["result"]["score"] >= body["result"]["threshold"]
    assert body["thumbnail"].startswith("data:image/jpeg;base64,")
    assert body["session"]["level"] == "A0"  # A2 also needs liveness in this session

    entries = [e["entry"] for e in await app_client.app[AUDIT].search(action="identity.face_check",
                                                                       session_id=live.sid)]
    assert [e["outcome"] for e in entries] == ["refused", "ok"]
    assert entries[1]["evidence"] == body["evidence"]
    stored = await app_client.app[IDENTITY].evidence.get(body["evidence"][0])
    assert stored[:2] == b"\xff\xd8"  # the live frame, kept encrypted
    assert "embedding" not in str(entries) and "template" not in str(entries)


async def test_liveness_on_a_still_photo_fails(live: Live) -> None:
    await live.post("/claim", json={"msisdn": NICOLE})
    await live.post("/consent", json={"face_consent": True})
    status, body = await live.post("/identity/liveness")
    assert status == 201, body
    challenge = body["challenge"]
    await asyncio.sleep(1.0)
    status, body = await live.post(f"/identity/liveness/{challenge['id']}")
    assert status == 200, body
    assert body["result"]["passed"] is False and body["result"]["frames"] >= 3
    assert body["session"]["level"] == "A0"
    status, body = await live.post(f"/identity/liveness/{challenge['id']}")
    assert status == 409  # collected once


async def test_uploads_bad_images_and_customer_still(live: Live) -> None:
    await live.post("/claim", json={"msisdn": NICOLE})
    await live.post("/consent", json={"face_consent": True})
    status, body = await live.post("/identity/face", data=b"not a jpeg", headers={
        "Content-Type": "image/jpeg"})
    assert status == 400 and body["error"]["code"] == "bad_image"
    status, body = await live.post("/identity/face", data=b"\xff" * (7 * 1024 * 1024), headers={
        "Content-Type": "image/jpeg"})
    assert status == 413
    photo = (FACES / "faceonnx/nicole_kidman/nicole_2.jpg").read_bytes()
    status, body = await live.post("/identity/face", data=photo, headers={"Content-Type": "image/jpeg"})
    assert status == 200 and body["result"]["decision"] == "match"

    url = f"{live.base}/api/customer/identity/still"
    async with aiohttp.ClientSession() as customer:
        other = (FACES / "faceonnx/brad_pitt/brad_1.jpg").read_bytes()
        async with customer.post(url, data=other, headers={"X-Customer-Token": live.customer_token,
                                                           "Content-Type": "image/jpeg"}) as resp:
            assert resp.status == 422, await resp.text()
        async with customer.post(url, data=photo, headers={"X-Customer-Token": live.customer_token,
                                                           "Content-Type": "image/jpeg"}) as resp:
            assert resp.status == 200, await resp.text()
            sha = (await resp.json())["sha256"]
    status, body = await live.post("/identity/face", json={"source": "customer_still", "sha256": sha})
    assert status == 200 and body["result"]["decision"] == "match"


async def test_models_missing_make_readyz_say_why(settings: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp.test_utils import TestServer

    from counter.app import build_app

    monkeypatch.setenv("COUNTER_MODELS_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("identity.models.download", _no_network)
    (tmp_path / "empty").mkdir()
    app = await build_app(settings.model_copy(update={"models_dir": tmp_path / "empty"}))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        for _ in range(400):
            if app[NOT_READY].get("models") != "loading models":
                break
            await asyncio.sleep(0.05)
        resp = await client.get("/readyz")
        assert resp.status == 503
        reason = (await resp.json())["problems"]["models"]
        assert "yunet" in reason.lower() or "face_detection" in reason
    finally:
        await client.close()


def _no_network(url: str, *args: Any, **kwargs: Any) -> Any:
    raise OSError(f"no network here ({url})")


class _SlowCallbacks(logging.Handler):
    """What asyncio's debug mode reports: each callback that held the loop past ``slow_callback_duration``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # aiortc's own DTLS and RTP tasks (the test's in-process customer peer encodes video on the loop)
        # are the library's, not this service's code
        if message.startswith("Executing") and "/aiortc/" not in message:
            self.seen.append(message)


async def test_the_call_and_identity_checks_never_block_the_loop(live: Live) -> None:
    """Asyncio debug mode over a live call's identity checks: no callback holds the loop 100 ms or more
    (ONNX, OpenCV, image and file work go to an executor)."""
    loop = asyncio.get_running_loop()
    slow = _SlowCallbacks()
    logging.getLogger("asyncio").addHandler(slow)
    loop.set_debug(True)
    loop.slow_callback_duration = 0.1
    try:
        await live.post("/claim", json={"msisdn": NICOLE})
        await live.post("/consent", json={"face_consent": True})
        status, body = await live.post("/identity/face", json={"source": "live"})
        assert status == 200 and body["result"]["decision"] == "match", body
        photo = (FACES / "faceonnx/nicole_kidman/nicole_2.jpg").read_bytes()
        status, body = await live.post("/identity/face", data=photo, headers={"Content-Type": "image/jpeg"})
        assert status == 200, body
        async with aiohttp.ClientSession() as customer:
            async with customer.post(f"{live.base}/api/customer/identity/still", data=photo, headers={
                    "X-Customer-Token": live.customer_token, "Content-Type": "image/jpeg"}) as resp:
                assert resp.status == 200, await resp.text()
        status, body = await live.post("/identity/liveness")
        assert status == 201, body
        await asyncio.sleep(1.0)
        status, body = await live.post(f"/identity/liveness/{body['challenge']['id']}")
        assert status == 200, body
        async with live.http.get(f"{live.base}/api/counter/sessions/{live.sid}/identity/evidence",
                                 headers=live.csrf) as resp:
            assert resp.status == 200, await resp.text()
    finally:
        loop.set_debug(False)
        logging.getLogger("asyncio").removeHandler(slow)
    assert slow.seen == []
