"""An ID card's portrait is compared with the face that matched in this session's face check, never
with the live frame: while the customer holds the card to the camera, the live frame is the card
itself, and a forged card (the holder's number, another person's photo) would match itself."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import pytest
from aiohttp.test_utils import TestClient

from counter.appkeys import ACCOUNTS, SESSIONS
from counter.audit import AUDIT
from counter.proofs import ProofKind
from counter.sessions import Level
from signaling import protocol as p
from signaling.witness.client import WitnessClient, WitnessSender
from tests.conftest import FACES
from tests.signaling.witnessing import PhotoVideo
from tests.web.live import NICOLE, Live, ready
from tests.web.live import models as models  # autouse: skip without the shared models

HOLDER_FACE = FACES / "faceonnx/nicole_kidman/nicole_2.jpg"  # the customer in front of the camera
HOLDER_CARD_FACE = FACES / "faceonnx/nicole_kidman/nicole_1.jpg"
OTHER_FACE = FACES / "faceonnx/brad_pitt/brad_1.jpg"
CardCall = Callable[[Path], Awaitable[Live]]


async def _card(app_client: TestClient[Any, Any], portrait_photo: Path, out: Path) -> Path:
    """The holder's card (her number, name, birth date) with the portrait cropped from ``portrait_photo``,
    filling a 640x480 camera frame the way a card is held up to a phone."""
    from tests.identity import synth

    holder = (await app_client.app[ACCOUNTS].get(NICOLE)).holder  # type: ignore[union-attr]
    portrait = cv2.imread(str(portrait_photo))
    assert portrait is not None, portrait_photo
    card = synth.render_card(synth.CardHolder(holder.id_number, synth.portrait_crop(portrait), name=holder.name,
                                              birth=dt.date.fromisoformat(holder.birth_date)))
    assert cv2.imwrite(str(out), synth.on_table(card, synth.rotated(-3, centre=(320, 240), width=600),
                                                size=(640, 480)), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return out


@pytest.fixture
async def card_call(app_client: TestClient[Any, Any], tmp_path: Path) -> AsyncIterator[CardCall]:
    """``await card_call(portrait)``: agent1 in a call on NICOLE's line (face consent given) whose
    customer's camera films the holder's ID card bearing the face of ``portrait``."""
    base = str(app_client.server.make_url("")).rstrip("/")
    await ready(app_client)
    closing: list[Any] = []

    async def connect(portrait: Path) -> Live:
        photo = await _card(app_client, portrait, tmp_path / f"card-{portrait.stem}.jpg")
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        customer_http = aiohttp.ClientSession()
        closing.extend([http, customer_http])
        agent = await WitnessClient.staff(http, base, "agent1", "agent1-demo")
        customer = await WitnessClient.customer(customer_http, base)
        assert isinstance(agent, WitnessClient) and isinstance(customer, WitnessClient)
        closing[:0] = [agent, customer]
        await customer.consent_to_recording()
        await agent.send(p.Presence(state="available"))
        await customer.send(p.Join(claimed_phone=NICOLE, face_consent=True))
        offer = await agent.expect(p.CallOffer)
        await agent.send(p.Accept(call_id=offer.call_id))
        await customer.expect(p.CallStarted)
        sender = WitnessSender(PhotoVideo(photo))
        closing.insert(0, sender)
        await sender.connect(customer, offer.call_id)
        async with http.get(f"{base}/api/auth/me") as resp:
            csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
        async with http.get(f"{base}/api/counter/sessions/{offer.call_id}") as resp:  # as the console does
            assert resp.status == 200, await resp.text()
        assert customer.token is not None
        return Live(http, base, offer.call_id, csrf, customer.token)

    yield connect
    for thing in closing:
        await thing.close()


async def _still(live: Live, photo: bytes) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as phone, phone.post(
        f"{live.base}/api/customer/identity/still?kind=id", data=photo,
        headers={"X-Customer-Token": live.customer_token, "Content-Type": "image/jpeg"},
    ) as resp:
        return resp.status, await resp.json()


async def _face_check(live: Live) -> str:
    status, body = await live.post("/identity/face", data=HOLDER_FACE.read_bytes(),
                                   headers={"Content-Type": "image/jpeg"})
    assert status == 200 and body["result"]["decision"] == "match", body
    return str(body["evidence"][0])


async def test_another_persons_portrait_on_the_holders_card_is_refused(
    app_client: TestClient[Any, Any], card_call: CardCall, tmp_path: Path
) -> None:
    live = await card_call(OTHER_FACE)
    photo = (tmp_path / f"card-{OTHER_FACE.stem}.jpg").read_bytes()
    for status, body in (await live.post("/identity/id-card", json={"source": "live"}), await _still(live, photo)):
        assert status == 409 and body["error"]["code"] == "face_check_first", body  # nothing to compare with yet
    face_sha = await _face_check(live)

    status, body = await live.post("/identity/id-card", json={"source": "live"})
    assert status == 200, body
    holder = (await app_client.app[ACCOUNTS].get(NICOLE)).holder  # type: ignore[union-attr]
    assert body["result"]["fields"]["number"][-4:] == holder.id_number[-4:], body["result"]  # the frame is the card
    assert body["accepted"] is False and "portrait_mismatch" in body["reasons"], body
    assert body["portrait_match"]["decision"] == "no_match"
    assert face_sha in body["evidence"]
    status, body = await _still(live, photo)
    assert status == 422 and body["error"]["code"] == "still_mismatch", body
    entries = [e["entry"] for e in await app_client.app[AUDIT].search(session_id=live.sid, action="identity")]
    card = next(e for e in entries if e["action"] == "identity.id_capture")
    assert card["outcome"] == "refused" and card["details"]["portrait"]["compared_with"] == "face_check"
    still = next(e for e in entries if e["action"] == "identity.customer_still")
    assert still["outcome"] == "refused" and still["details"]["compared_with"] == "face_check"
    assert face_sha in still["evidence"]
    assert (await app_client.app[SESSIONS].get(live.sid)).level == Level.A0


async def test_holders_card_after_a_good_face_check_is_accepted(
    app_client: TestClient[Any, Any], card_call: CardCall, tmp_path: Path
) -> None:
    live = await card_call(HOLDER_CARD_FACE)
    face_sha = await _face_check(live)
    # Liveness cannot be performed by a still photo stream: its proof is recorded directly, as if passed.
    sessions = app_client.app[SESSIONS]
    alive = hashlib.sha256(b"liveness frame").hexdigest()
    await sessions.proofs.record(live.sid, ProofKind.LIVENESS, [alive])
    await sessions.raise_level(live.sid, Level.A2, [face_sha, alive], "face", recorded_by="agent1")
    status, body = await live.post("/identity/id-card", json={"source": "live"})
    assert status == 200, body
    assert body["accepted"] is True and body["portrait_match"]["decision"] == "match", body
    assert body["session"]["level"] == "A3"
    status, body = await _still(live, (tmp_path / f"card-{HOLDER_CARD_FACE.stem}.jpg").read_bytes())
    assert status == 200 and body["accepted"] is True, body
    status, body = await live.post("/identity/id-card", json={"source": "customer_still", "sha256": body["sha256"]})
    assert status == 200 and body["accepted"] is True, body


async def test_a_card_read_before_a2_is_refused_in_the_answer_and_the_entry_alike(
    app_client: TestClient[Any, Any], card_call: CardCall
) -> None:
    """The holder's good card after a face match but no liveness: no A3 (the ID step needs A2), and the
    audit entry says refused, as the answer does (not ``ok`` and then an error)."""
    live = await card_call(HOLDER_CARD_FACE)
    await _face_check(live)
    status, body = await live.post("/identity/id-card", json={"source": "live"})
    assert status == 200 and body["accepted"] is False and body["reasons"] == ["a2_first"], body
    [entry] = [e["entry"] for e in await app_client.app[AUDIT].search(session_id=live.sid,
                                                                      action="identity.id_capture")]
    assert entry["outcome"] == "refused" and entry["details"]["reasons"] == ["a2_first"]
    assert (await app_client.app[SESSIONS].get(live.sid)).level == Level.A0


async def test_holders_passport_is_read_but_not_the_document_on_file(
    app_client: TestClient[Any, Any], card_call: CardCall, tmp_path: Path
) -> None:
    """A passport's data page is read from its zone and its portrait matched, but the line is registered
    with a resident ID number: the passport cannot raise the level (number_mismatch), and its number
    reaches the console masked."""
    from identity import mrz
    from identity.idcard import PASSPORT
    from tests.identity import synth

    live = await card_call(HOLDER_CARD_FACE)
    await _face_check(live)
    holder = synth.PassportHolder(synth.portrait_crop(cv2.imread(str(HOLDER_CARD_FACE))))
    page = synth.render_passport(holder, synth.passport_zone(holder, check=mrz.check_digit))
    photo = synth.on_table(page, synth.rotated(5, width=1000, ratio=PASSPORT.width_mm / PASSPORT.height_mm))
    status, body = await live.post("/identity/id-card", data=cv2.imencode(".jpg", photo)[1].tobytes(),
                                   headers={"Content-Type": "image/jpeg"})
    assert status == 200, body
    assert body["result"]["document"] == "passport" and body["result"]["number_valid"] is True, body["result"]
    assert body["result"]["fields"]["number"] == "EH*****67"
    assert body["portrait_match"]["decision"] == "match", body["portrait_match"]
    # not the document on file, a type declared to prove nothing; and before A2 no card raises the level anyway
    assert body["accepted"] is False, body
    assert body["reasons"] == ["number_mismatch", "document_not_accepted", "a2_first"], body
    assert body["result"]["raises"] is None
    assert body["session"]["level"] == "A0"
