"""Face-data consent from the customer's own screen to the counter session, the audit log and the
identity API, over real sockets: the customer's answer travels with ``join``; a decline shuts every
face operation with a reason pointing to the attestation path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from counter.appkeys import ACCOUNTS, IDENTITY, SESSIONS
from counter.audit import AUDIT
from counter.sessions import Level
from signaling import protocol as p
from signaling.client import SignalingClient
from tests.calls import live_call
from tests.conftest import CARD_PORTRAIT, FACES

LINE = "13800138000"


@dataclass
class Call:
    """A connected call: the customer's socket and join token, the agent's HTTP session and CSRF header."""

    base: str
    call_id: str
    customer: SignalingClient
    phone: aiohttp.ClientSession
    staff: aiohttp.ClientSession
    csrf: dict[str, str]

    async def agent(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        url = f"{self.base}/api/counter/sessions/{self.call_id}{path}"
        async with self.staff.post(url, headers=self.csrf, **kwargs) as resp:
            return resp.status, await resp.json()

    async def still(self, data: bytes, query: str = "") -> tuple[int, Any]:
        headers = {"X-Customer-Token": self.customer.token or "", "Content-Type": "image/jpeg"}
        async with self.phone.post(f"{self.base}/api/customer/identity/still{query}", data=data,
                                   headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def connected(app_client: TestClient[Any, Any]) -> AsyncIterator[Any]:
    """``await connected(face_consent)``: a customer who answered so, put through to agent1."""
    base = str(app_client.make_url("")).rstrip("/")
    closing: list[Any] = []

    async def connect(face_consent: bool | None) -> Call:
        staff = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        phone = aiohttp.ClientSession()
        closing.extend([staff, phone])
        customer = await SignalingClient.customer(phone, base)
        agent = await SignalingClient.staff(staff, base, "agent1", "agent1-demo")
        closing[:0] = [customer, agent]
        await customer.send(p.Join(claimed_phone=LINE, face_consent=face_consent))
        await customer.expect(p.QueueStatus)
        await agent.send(p.Presence(state="available"))
        offer = await agent.expect(p.CallOffer)
        await agent.send(p.Accept(call_id=offer.call_id))
        await agent.expect(p.CallStarted, call_id=offer.call_id)
        await customer.expect(p.CallStarted, call_id=offer.call_id)
        async with staff.get(f"{base}/api/auth/me") as resp:
            csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
        async with staff.get(f"{base}/api/counter/sessions/{offer.call_id}") as resp:  # as the console does
            assert resp.status == 200, await resp.text()
        return Call(base, offer.call_id, customer, phone, staff, csrf)

    yield connect
    for thing in closing:
        await thing.close()


async def _consents(app_client: TestClient[Any, Any], call_id: str) -> list[tuple[str, str, str, Any]]:
    entries = await app_client.app[AUDIT].search(action="consent.face", session_id=call_id)
    return [(e["entry"]["actor_role"], e["entry"]["outcome"], e["entry"]["details"]["source"],
             e["entry"]["details"]["accepted"]) for e in entries]


async def test_declined_on_screen_reaches_session_audit_and_refuses_face(
    app_client: TestClient[Any, Any], connected: Any
) -> None:
    call: Call = await connected(False)
    session = await app_client.app[SESSIONS].get(call.call_id)
    assert session.face_consent is False and session.account == LINE
    assert await _consents(app_client, call.call_id) == [("customer", "refused", "customer_screen", False)]

    status, body = await call.agent("/consent", json={"face_consent": True})
    assert status == 409 and body["error"]["code"] == "face_declined_by_customer", body
    assert (await app_client.app[SESSIONS].get(call.call_id)).face_consent is False

    await call.agent("/verify-password", json={"password": "246810"})
    for path, kwargs in (("/identity/face", {"json": {"source": "live"}}),
                         ("/identity/liveness", {})):
        status, body = await call.agent(path, **kwargs)
        assert status == 409 and body["error"]["code"] == "face_declined", (path, body)
        assert "attestation path" in body["error"]["reason"]
    photo = (FACES / "faceonnx/nicole_kidman/nicole_2.jpg").read_bytes()
    status, body = await call.still(photo, "?kind=face")
    assert status == 409 and body["error"]["code"] == "face_declined", body
    assert await app_client.app[AUDIT].search(action="identity.face_check", session_id=call.call_id) == []


async def test_accepted_on_screen_then_withdrawn_aloud(app_client: TestClient[Any, Any], connected: Any) -> None:
    call: Call = await connected(True)
    assert (await app_client.app[SESSIONS].get(call.call_id)).face_consent is True
    status, body = await call.agent("/consent", json={"face_consent": False})
    assert status == 200 and body["session"]["face_consent"] is False
    assert await _consents(app_client, call.call_id) == [
        ("customer", "ok", "customer_screen", True), ("agent", "refused", "agent_recorded", False),
    ]


async def test_not_asked_means_no_face_processing(app_client: TestClient[Any, Any], connected: Any) -> None:
    call: Call = await connected(None)
    assert (await app_client.app[SESSIONS].get(call.call_id)).face_consent is None
    assert await _consents(app_client, call.call_id) == []
    await call.agent("/verify-password", json={"password": "246810"})
    status, body = await call.agent("/identity/face", json={"source": "live"})
    assert status == 409 and body["error"]["code"] == "face_consent", body
    status, body = await call.agent("/consent", json={"face_consent": True})  # said aloud, recorded by the agent
    assert status == 200 and body["session"]["face_consent"] is True
    assert await _consents(app_client, call.call_id) == [("agent", "ok", "agent_recorded", True)]


def _card_photo(id_number: str, name: str, birth: str) -> bytes:
    """A photo of the holder's ID card on a table (synthetic card, real portrait)."""
    from tests.identity import synth

    return synth.card_photo_jpeg(CARD_PORTRAIT, id_number, name, birth)


async def test_declined_id_still_is_read_without_face_processing_then_attested(
    app_client: TestClient[Any, Any], connected: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Face declined: the customer's ID still is kept (number only, compare by eye) with no face
    detection at all; the agent reaches A2 by attestation on it and A3 when its number is the holder's."""
    call: Call = await connected(False)
    ident = app_client.app[IDENTITY]
    assert ident.service is not None
    detections: list[int] = []
    detect = ident.service.faces.detect_sync

    def counting(*args: Any, **kwargs: Any) -> Any:
        detections.append(1)
        return detect(*args, **kwargs)

    monkeypatch.setattr(ident.service.faces, "detect_sync", counting)
    holder = (await app_client.app[ACCOUNTS].get(LINE)).holder  # type: ignore[union-attr]
    photo = _card_photo(holder.id_number, holder.name, holder.birth_date)

    status, body = await call.still(photo, "?kind=face")
    assert status == 409 and body["error"]["code"] == "face_declined"
    status, body = await call.still(photo, "?kind=id")
    assert status == 200 and body["accepted"] is True and body["compare_by_eye"] is True, body
    sha = body["sha256"]
    assert await ident.evidence.get(sha) == photo
    [entry] = [e["entry"] for e in await app_client.app[AUDIT].search(action="identity.customer_still",
                                                                      session_id=call.call_id)]
    assert entry["details"]["face_processing"] is False and entry["details"]["number_matches"] is True
    assert sha in entry["evidence"]

    status, body = await call.agent("/identity/id-card", json={"source": "customer_still", "sha256": sha})
    assert status == 200 and body["accepted"] is False and "attest_first" in body["reasons"], body
    assert body["portrait_match"] is None and body["result"]["portrait"] is False
    await call.agent("/verify-password", json={"password": "246810"})
    # no live video on this server: the attestation rests on the ID still the customer sent, which it cites
    status, body = await call.agent("/identity/attest", json={"confirm": True})
    assert status == 200 and body["session"]["level"] == "A2" and body["evidence"] == [sha], body
    status, body = await call.agent("/identity/id-card", json={"source": "customer_still", "sha256": sha})
    assert status == 200 and body["accepted"] is True, body
    session = await app_client.app[SESSIONS].get(call.call_id)
    assert (session.level, session.level_method) == (Level.A3, "idcard_attested")
    assert detections == []  # not one face detection in the whole declined path


async def test_the_consent_entry_and_the_session_carry_when_the_customer_answered(
    app_client: TestClient[Any, Any]
) -> None:
    """The on-screen answer's time is the customer's join, not the later moment an agent accepted."""
    async with live_call(str(app_client.make_url("")), claimed_phone=LINE, face_consent=True) as call:
        status, body = await call.staff("GET", f"/api/counter/sessions/{call.call_id}")  # as the console does
        assert status == 200
        audit = app_client.app[AUDIT]  # the join's entries are written before the customer hears of the queue
        [consent] = [e["entry"] for e in await audit.search(action="consent.face", session_id=call.call_id)]
        [joined] = [e["entry"] for e in await audit.search(action="call.joined", session_id=call.call_id)]
        answered = consent["details"]["answered_at"]
        assert joined["time"] <= consent["time"] and answered <= consent["time"]
        session = await app_client.app[SESSIONS].get(call.call_id)  # opened when the agent accepted, later
        assert session.face_consent is True and session.face_consent_at == answered < session.created_at
        assert body["session"]["face_consent_at"] == answered
        status, body = await call.staff("POST", f"/api/counter/sessions/{call.call_id}/consent",
                                        json={"face_consent": False})  # withdrawn aloud, later: its own time
        assert status == 200 and body["session"]["face_consent_at"] > answered
