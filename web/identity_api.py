"""Identity checks for the agent console, on the current counter session.

Face check (live frame from the witness, or an uploaded still) against the account's real-name
photo; active liveness challenge evaluated on frames the witness takes from the live video; ID card
capture (upload, live frame, or a still the customer's page sent) whose number must match the
account and whose portrait must match the face of this session's last matching face check (never
the current live frame: while the card is held up, that is the card itself); the agent's
attestation when the customer declined face processing.  Every image is stored encrypted in the
identity evidence store and referenced by sha256 in the audit entry (``identity.face_check``,
``identity.liveness``, ``identity.id_capture``, ``identity.attestation``); results raise the session's assurance level
(A2: face match and liveness in this session; A3: A2 and the ID card).  Face templates are never
logged.  The models are loaded once, in an executor, when the app starts; until then (or if a
model file is missing) the endpoints answer 503 and ``/readyz`` says why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
import time
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from counter.appkeys import EVIDENCE, NOT_READY, SETTINGS
from counter.audit import AUDIT, AuditEvent
from counter.levels import (
    Level,
    Method,
    WhyNot,
    document_refusal,
    face_processing_refusal,
    id_method,
    identity_path,
    step_refusal,
)
from counter.proofs import ProofKind, SessionProofs
from counter.sessions import CounterSession, SessionError
from identity import Challenge, Checked, EvidenceStore, FaceMatch, IdCardResult, IdentityService, LivenessResult
from identity.evidence import EvidenceNotFound
from identity.images import ImageError, as_bgr
from identity.liveness import UnusableReference
from signaling.aio import SIGNALING
from signaling.protocol import NoticeCode
from signaling.witness import WitnessError
from web.counter_api import ACCOUNTS, SESSIONS, agent_session, customer_session
from web.counter_api import _session_json as _session_json
from web.errors import ApiError, read_body, read_json
from web.owners import owned
from web.recordings_api import WITNESS

log = logging.getLogger("web.identity")

MAX_IMAGE_BYTES = 6 * 1024 * 1024
THUMB_WIDTH = 160


class IdentityState:
    """The identity service once its models are loaded, and the evidence store.

    What a session proved (face match, liveness, accepted stills, ID stills) and its liveness
    challenges are in the database (:class:`counter.proofs.SessionProofs`), seen by every node.
    """

    def __init__(self, evidence: EvidenceStore) -> None:
        self.evidence = evidence
        self.service: IdentityService | None = None
        self.error: str | None = "loading models"

    def ready(self) -> IdentityService:
        if self.service is None:
            raise ApiError(503, "identity_not_ready", f"identity checks are unavailable: {self.error}")
        return self.service


IDENTITY = web.AppKey("identity", IdentityState)


# --- helpers ---------------------------------------------------------------------------------------


async def _own(request: web.Request) -> tuple[CounterSession, str]:
    """The agent's own session of a call connected to them now (identity checks need the live holder)."""
    session = await agent_session(request)
    return session, session.agent


async def _read_image(request: web.Request) -> bytes:
    data = await read_body(
        request, MAX_IMAGE_BYTES, f"images up to {MAX_IMAGE_BYTES // (1024 * 1024)} MB; send a smaller photo"
    )
    try:
        await asyncio.to_thread(as_bgr, data)
    except ImageError as exc:
        raise ApiError(400, "bad_image", str(exc)) from exc
    return data


async def _source(request: web.Request, session: CounterSession, body: Any = None) -> tuple[Any, str]:
    """The image to check: an uploaded still (``image/*`` body) or JSON ``{"source": "live"}`` /
    ``{"source": "customer_still", "sha256": ...}`` (``body``: that JSON if read already)."""
    if request.content_type.startswith("image/"):
        return await _read_image(request), "upload"
    if body is None:
        body = await read_json(request, limit=4096)
    _not_the_helper(body)
    source = body.get("source") if isinstance(body, dict) else None
    if source == "live":
        return await _live_frame(request, session.id), "live"
    if source == "customer_still" and isinstance(body, dict):
        sha = str(body.get("sha256", ""))
        if not await _proofs(request).holds(session.id, sha, (ProofKind.CUSTOMER_STILL, ProofKind.ID_STILL)):
            raise ApiError(404, "no_still", "no accepted customer still with that sha256 in this session")
        return await request.app[IDENTITY].evidence.get(sha), "customer_still"
    raise ApiError(400, "bad_request", 'send an image (Content-Type image/jpeg) or {"source": "live"}')


def _not_the_helper(body: Any) -> None:
    if isinstance(body, dict) and body.get("source") == "helper":
        # Identity is the holder's: the helper's camera is recorded but never checked, never matched.
        raise ApiError(409, "not_holder", "identity checks use the account holder's camera only, "
                                          "never the helper's: ask the holder to face their camera")


async def _live_frame(request: web.Request, call_id: str) -> np.ndarray[Any, Any]:
    try:
        _, frame = await request.app[WITNESS].call(call_id).grab(within=5.0)
    except WitnessError as exc:
        raise ApiError(409, exc.code, exc.reason) from exc
    return frame


async def _kept(ident: IdentityState, checked: Checked, image: Any, kind: str, session_id: str,
                facts: dict[str, Any] | None = None) -> Checked:
    """Store the image (and derived facts) encrypted in this installation's evidence store."""
    if isinstance(image, np.ndarray):
        _, buf = await asyncio.to_thread(cv2.imencode, ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        data = buf.tobytes()
    else:
        data = bytes(image)
    shas = [await ident.evidence.put(data, kind, {"session": session_id})]
    if facts is not None:
        blob = json.dumps(facts, ensure_ascii=False, sort_keys=True).encode()
        shas.append(await ident.evidence.put(blob, kind + ".facts", {"session": session_id}))
    return Checked(checked.result, (*checked.evidence, *shas))


async def _thumbnail(image: Any) -> str:
    """A small JPEG data URL of ``image``, made in an executor (OpenCV work stays off the loop)."""
    return await asyncio.to_thread(_thumbnail_sync, image)


def _thumbnail_sync(image: Any) -> str:
    bgr = as_bgr(image)
    scale = THUMB_WIDTH / bgr.shape[1]
    small = cv2.resize(bgr, (THUMB_WIDTH, max(1, int(bgr.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


async def _audit(request: web.Request, action: str, actor: str, session: CounterSession, outcome: str,
                 details: dict[str, Any], evidence: tuple[str, ...], reason: str | None = None) -> int:
    receipt = await request.app[AUDIT].append(AuditEvent(
        action, "agent", actor, outcome=outcome, session_id=session.id, account=session.account,
        details=details, evidence=list(evidence), reason=reason,
    ))
    return receipt.seq


def _proofs(request: web.Request) -> SessionProofs:
    return request.app[SESSIONS].proofs


async def _maybe_a2(request: web.Request, session: CounterSession, actor: str) -> tuple[CounterSession, str | None]:
    """A2 once this session holds both a face match and a passed liveness; else the session as it is.
    The check itself stands either way: a refused raise is said beside it (``level_refused``)."""
    face = await _proofs(request).latest(session.id, ProofKind.FACE_MATCH)
    alive = await _proofs(request).latest(session.id, ProofKind.LIVENESS)
    if face is None or alive is None:
        return session, None
    try:
        return await request.app[SESSIONS].raise_level(
            session.id, Level.A2, [face.sha, alive.sha], Method.FACE, recorded_by=actor
        ), None
    except SessionError as exc:
        return await request.app[SESSIONS].get(session.id), exc.reason


def _refused(why: WhyNot | None) -> None:
    """Answer 409 with the rule's code and words (:mod:`counter.levels` decides)."""
    if why is not None:
        raise ApiError(409, why.code, why.en, reason_zh=why.zh)


def _need_face_consent(session: CounterSession) -> None:
    _refused(face_processing_refusal(session))


def _need_consent(session: CounterSession) -> None:
    _refused(step_refusal(session, Method.FACE))


# --- handlers --------------------------------------------------------------------------------------------


async def state(request: web.Request) -> web.Response:
    session = await agent_session(request, live=False)
    ident = request.app[IDENTITY]
    face = await _proofs(request).latest(session.id, ProofKind.FACE_MATCH)
    alive = await _proofs(request).latest(session.id, ProofKind.LIVENESS)
    witness = request.app[WITNESS].calls.get(session.id)
    return web.json_response({
        "session": _session_json(session),
        "ready": ident.service is not None,
        "not_ready_reason": ident.error,
        "path": identity_path(session).value,
        "face_matched_at": face.timestamp if face else None,
        "liveness_passed_at": alive.timestamp if alive else None,
        "live_video": witness is not None and "customer" in witness.legs,
    })


async def face_check(request: web.Request) -> web.Response:
    """Match the live face (witness frame or an uploaded still) with the account's real-name photo."""
    session, actor = await _own(request)
    body = None if request.content_type.startswith("image/") else await read_json(request, limit=4096)
    _not_the_helper(body)
    _need_consent(session)
    ident = request.app[IDENTITY]
    service = ident.ready()
    assert session.account is not None
    reference = await request.app[ACCOUNTS].holder_photo(session.account)
    if reference is None:
        raise ApiError(409, "no_reference", "no real-name photo on file for this line: use the ID card")
    image, source = await _source(request, session, body)
    checked = await service.verify_face(image, reference, session.id)
    checked = await _kept(ident, checked, image, "face.live", session.id)
    match = checked.result
    assert isinstance(match, FaceMatch)
    ok = match.decision == "match"
    if ok:  # the live image the server matched and kept: this session's face proof
        await _proofs(request).record(session.id, ProofKind.FACE_MATCH, checked.evidence[:1])
    seq = await _audit(request, "identity.face_check", actor, session, "ok" if ok else "refused",
                       {"source": source, "score": round(match.score, 4), "threshold": match.threshold,
                        "decision": match.decision, "notes": [n.code for n in match.notes]}, checked.evidence)
    session, refused = await _maybe_a2(request, session, actor) if ok else (session, None)
    return web.json_response({"result": match.to_json(), "evidence": list(checked.evidence), "audit_seq": seq,
                              "thumbnail": await _thumbnail(image), "session": _session_json(session),
                              "level_refused": refused})


async def liveness_start(request: web.Request) -> web.Response:
    """A new challenge; the witness keeps customer frames until it is evaluated."""
    session, _ = await _own(request)
    _need_consent(session)
    challenge = request.app[IDENTITY].ready().start_liveness()
    try:
        call = request.app[WITNESS].call(session.id)
    except WitnessError as exc:
        raise ApiError(409, exc.code, exc.reason) from exc
    # kept in the database: the node that evaluates it need not be this one
    await _proofs(request).save_challenge(session.id, challenge.id, challenge.state(), challenge.deadline)
    call.start_collecting(challenge.id, seconds=challenge.deadline - time.time() + 1.0)
    return web.json_response({"challenge": challenge.to_json()}, status=201)


async def liveness_evaluate(request: web.Request) -> web.Response:
    session, actor = await _own(request)
    _need_consent(session)
    service = request.app[IDENTITY].ready()
    cid = request.match_info["cid"]
    assert session.account is not None
    # The performer must be the holder on file: no passing the face check and leaving the movements
    # to someone else.  Without a real-name photo there is no face path to A2 anyway.
    reference = await request.app[ACCOUNTS].holder_photo(session.account)
    try:
        frames = request.app[WITNESS].call(session.id).collected(cid)
        state = await _proofs(request).take_challenge(session.id, cid)
        if state is None:
            raise ApiError(404, "no_challenge", f"unknown or used liveness challenge {cid!r}: start a new one")
        checked = await service.evaluate_liveness(Challenge.from_state(state), frames, session_id=session.id,
                                                  reference=reference)
        if frames:
            checked = await _kept(request.app[IDENTITY], checked, frames[0][1], "face.liveness", session.id)
        anchor = checked.result.anchor_frame if isinstance(checked.result, LivenessResult) else None
        if anchor is not None:  # the frame matched with the photo on file: who performed the challenge
            checked = await _kept(request.app[IDENTITY], checked, frames[anchor][1], "face.liveness.anchor",
                                  session.id)
    except WitnessError as exc:
        raise ApiError(409, exc.code, exc.reason) from exc
    except UnusableReference as exc:
        raise ApiError(409, "no_reference", str(exc)) from exc
    result = checked.result
    assert isinstance(result, LivenessResult)
    if result.passed:  # the frames kept from the live video (first, and the one matched with the photo)
        await _proofs(request).record(session.id, ProofKind.LIVENESS, checked.evidence)
    seq = await _audit(request, "identity.liveness", actor, session, "ok" if result.passed else "refused",
                       {"challenge": list(result.completed), "frames": result.frames,
                        "passive_score": result.passive_score, "reasons": list(result.reasons),
                        "identity": result.identity_json()}, checked.evidence)
    session, refused = await _maybe_a2(request, session, actor) if result.passed else (session, None)
    if not result.passed and (signaling := request.app.get(SIGNALING)) is not None:
        # the customer is told it failed and what comes next, in their page's words for the code
        await signaling.notify_customer(session.id, NoticeCode.LIVENESS_FAILED, "The movements check did not "
                                        "pass; the agent will try again or check another way.")
    shown = frames[result.anchor_frame if result.anchor_frame is not None else 0][1] if frames else None
    thumb = await _thumbnail(shown) if shown is not None else ""
    return web.json_response({"result": result.to_json(), "evidence": list(checked.evidence), "audit_seq": seq,
                              "thumbnail": thumb, "session": _session_json(session), "level_refused": refused})


async def id_capture(request: web.Request) -> web.Response:
    """Read the ID card; its number must be the account holder's and its portrait the face that matched
    in this session's face check (refused with ``face_check_first`` before one has)."""
    session, actor = await _own(request)
    if session.account is None:
        raise ApiError(409, "no_account", "claim the customer's line first")
    ident = request.app[IDENTITY]
    service = ident.ready()
    face_checked = await _face_checked(request, session) if session.face_consent is True else None
    image, source = await _source(request, session)
    checked = await service.read_id(image, session.id, faces=session.face_consent is True)
    card = checked.result
    assert isinstance(card, IdCardResult)
    checked = await _kept(ident, checked, image, "id_card.image", session.id, card.to_json())
    account = await request.app[ACCOUNTS].get(session.account)
    reasons: list[str] = list(card.errors)
    number = card.fields.get("number", "")
    number_matches = bool(account) and bool(number) and account is not None and number == account.holder.id_number
    if not card.number_valid:
        reasons.append("number_invalid")
    if not number_matches:
        reasons.append("number_mismatch")
    evidence = checked.evidence
    portrait: dict[str, Any] | None = None
    if face_checked is not None:
        face_sha, face_image = face_checked
        evidence = (*evidence, face_sha)
        if card.portrait is None:
            reasons.append("no_portrait")
        else:
            match = await service.faces.verify(face_image, card.portrait)
            portrait = match.to_json()
            if match.decision != "match":
                reasons.append("portrait_mismatch")
    if (why := document_refusal(card.document, card.raises)) is not None:
        reasons.append(why.code)  # the type declares nothing (or less than A3): read, shown, proves nothing
    method = id_method(session)
    if (why := step_refusal(session, method)) is not None:
        reasons.append(why.code)  # e.g. face declined: compare the card with the person, attest, then read it again
    if not reasons:
        # the card read and kept by the server: this session's ID proof; the level is raised before the
        # entry is written, so that the entry says what the caller is told
        await _proofs(request).record(session.id, ProofKind.ID_CARD, checked.evidence,
                                      {"document": card.document})
        try:
            session = await request.app[SESSIONS].raise_level(session.id, Level.A3, list(evidence), method,
                                                              recorded_by=actor)
        except SessionError as exc:
            reasons.append(exc.code)
    ok = not reasons
    seq = await _audit(request, "identity.id_capture", actor, session, "ok" if ok else "refused",
                       {"source": source, "number_valid": card.number_valid, "number_matches": number_matches,
                        "portrait": None if portrait is None else {"score": portrait["score"],
                                                                    "decision": portrait["decision"],
                                                                    "compared_with": "face_check"},
                        "reasons": reasons, "method": method.value}, evidence)
    card_json = card.to_json()
    if number:
        card_json["fields"] = {**card.fields, "number": _masked_number(number)}
    return web.json_response({"result": card_json, "accepted": ok, "reasons": reasons, "portrait_match": portrait,
                              "evidence": list(evidence), "audit_seq": seq, "thumbnail": await _thumbnail(image),
                              "session": _session_json(session)})


def _masked_number(number: str) -> str:
    """A document number as the console shows it: 3 + 4 of a resident ID number, 2 + 2 of a passport's."""
    keep = (3, 4) if len(number) == 18 else (2, 2)
    return number[: keep[0]] + "*" * max(len(number) - sum(keep), 3) + number[-keep[1] :]


async def _face_checked(request: web.Request, session: CounterSession) -> tuple[str, bytes]:
    """The sha and image of this session's last matching face check: what an ID card's portrait is
    compared with.  Never the current live frame: while the card is held to the camera, that frame
    is the card itself, and the portrait would be compared with itself."""
    face = await _proofs(request).latest(session.id, ProofKind.FACE_MATCH)
    if face is None:
        raise ApiError(409, "face_check_first",
                       "no face check has matched in this session yet: run the face check first (Alt+F); "
                       "the ID card's portrait is compared with the face that matched the account's photo")
    try:
        return face.sha, await request.app[IDENTITY].evidence.get(face.sha)
    except EvidenceNotFound as exc:  # kept by another server of the installation, or purged since
        raise ApiError(409, "face_check_again",
                       "the image of this session's face check is not on this server: run the face check "
                       "again (Alt+F), then read the card", reason_zh="请重新做一次人脸核验，再拍身份证") from exc


async def attest(request: web.Request) -> web.Response:
    """Face declined: the agent attests that the ID card shown on camera is the live person's (A2)."""
    session, actor = await _own(request)
    _refused(step_refusal(session, Method.ATTESTATION))
    body = await read_json(request, limit=4096)
    if not isinstance(body, dict) or body.get("confirm") is not True:
        raise ApiError(400, "bad_request", 'send {"confirm": true} once you compared the card with the person')
    # The evidence: the live frame the agent looked at (where this node has the call's live video) and
    # the ID stills this session's customer sent from their own page, stored by the server.
    frame: np.ndarray[Any, Any] | None = None
    shas: list[str] = []
    with contextlib.suppress(WitnessError):
        _, frame = await request.app[WITNESS].call(session.id).grab(within=5.0)
    if frame is not None:
        _, buf = await asyncio.to_thread(cv2.imencode, ".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        sha = await request.app[IDENTITY].evidence.put(buf.tobytes(), "attestation.frame", {"session": session.id})
        await _proofs(request).record(session.id, ProofKind.ATTESTATION, [sha])
        shas.append(sha)
    stills = [p.sha for p in await _proofs(request).of_session(session.id, (ProofKind.ID_STILL,))]
    evidence = (*shas, *stills)
    if not evidence:
        raise ApiError(409, "no_evidence", "there is nothing to attest on: no live video of the call here and no "
                       "ID card photo from the customer's page; ask the customer to send it (show ID step)")
    try:
        session = await request.app[SESSIONS].raise_level(session.id, Level.A2, list(evidence), Method.ATTESTATION,
                                                          recorded_by=actor)
    except SessionError as exc:
        raise ApiError(409, exc.code, exc.reason) from exc
    viewed = await request.app[AUDIT].search(session_id=session.id, action="identity.evidence_viewed",
                                             actor_id=actor)
    seq = await _audit(request, "identity.attestation", actor, session, "ok",
                       {"statement": "id_card_matches_person", "face": "declined", "id_stills": len(stills),
                        "live_frame": frame is not None, "evidence_viewer_opened": len(viewed)}, evidence)
    return web.json_response({"evidence": list(evidence), "audit_seq": seq,
                              "thumbnail": await _thumbnail(frame) if frame is not None else "",
                              "session": _session_json(session)})


# --- the evidence viewer -------------------------------------------------------------------------------

#: Which proofs hold images worth looking at, and what they show: the ID card, or the live face.
_VIEWABLE = {
    ProofKind.ID_CARD: "id_still", ProofKind.ID_STILL: "id_still", ProofKind.CUSTOMER_STILL: "live_face",
    ProofKind.FACE_MATCH: "live_face", ProofKind.LIVENESS: "live_face", ProofKind.ATTESTATION: "live_face",
}


async def _viewable(request: web.Request, session: CounterSession) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The session's images (newest first, each once) as ``{kind, sha256}``, and the ID card's fields read."""
    store = request.app[IDENTITY].evidence
    items: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    seen: set[str] = set()
    for proof in reversed(await _proofs(request).of_session(session.id, tuple(_VIEWABLE))):
        if proof.sha in seen:
            continue
        seen.add(proof.sha)
        try:
            info = await store.info(proof.sha)
        except EvidenceNotFound:
            continue  # purged after retention
        if info.kind.endswith(".facts"):
            if proof.kind is ProofKind.ID_CARD and not fields:
                facts = json.loads(await store.get(proof.sha))
                fields = dict(facts.get("fields") or {})
                if fields.get("number"):
                    fields["number"] = _masked_number(str(fields["number"]))
            continue
        kind = _VIEWABLE[proof.kind]
        if proof.kind is ProofKind.CUSTOMER_STILL and info.meta.get("kind") == "id":
            kind = "id_still"
        items.append({"kind": kind, "sha256": proof.sha, "at": proof.at})
    return items, fields


def _size(data: bytes) -> tuple[int, int]:
    image = as_bgr(data)
    return int(image.shape[1]), int(image.shape[0])


async def evidence_list(request: web.Request) -> web.Response:
    """The evidence viewer: the customer's ID still and live face at full size beside the real-name photo
    on file, with the ID card's fields.  The session's own agent only, while the call is live; opening
    it is audited (``identity.evidence_viewed``) and the attestation cites that entry."""
    session, actor = await _own(request)
    items, fields = await _viewable(request, session)
    store = request.app[IDENTITY].evidence
    base = f"/api/counter/sessions/{session.id}/identity/evidence"
    out: list[dict[str, Any]] = []
    for item in items:
        try:
            width, height = await asyncio.to_thread(_size, await store.get(item["sha256"]))
        except ImageError:
            continue
        out.append({**item, "url": f"{base}/{item['sha256']}", "width": width, "height": height})
    photo = await request.app[ACCOUNTS].holder_photo(session.account) if session.account else None
    if photo is not None:
        width, height = await asyncio.to_thread(_size, photo)
        out.append({"kind": "photo_on_file", "sha256": None, "url": f"{base}/photo", "width": width,
                    "height": height})
    seq = await _audit(request, "identity.evidence_viewed", actor, session, "ok",
                       {"images": [i["kind"] for i in out], "fields": sorted(fields)},
                       tuple(i["sha256"] for i in out if i["sha256"]))
    return web.json_response({"images": out, "fields": fields, "audit_seq": seq},
                             headers={"Cache-Control": "no-store"})


async def evidence_image(request: web.Request) -> web.Response:
    """One image of the viewer, decrypted from the evidence store, at the size it was stored."""
    session, _ = await _own(request)
    sha = request.match_info["sha"]
    if sha == "photo":
        data = await request.app[ACCOUNTS].holder_photo(session.account) if session.account else None
        if data is None:
            raise ApiError(404, "no_reference", "no real-name photo on file for this line")
    else:
        items, _ = await _viewable(request, session)
        if sha not in {i["sha256"] for i in items}:
            raise ApiError(404, "no_evidence", "no image with that sha256 among this session's evidence")
        data = await request.app[IDENTITY].evidence.get(sha)
    kind = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return web.Response(body=data, content_type=kind, headers={"Cache-Control": "no-store, private"})


async def customer_still(request: web.Request) -> web.Response:
    """A still from the customer's page (ID legibility), kept only if its face is the customer's: a
    face still (``?kind=face``) is matched with the live video; an ID card still (``?kind=id``) with
    this session's last matching face check, since the live video is showing the card itself then.

    A customer who declined face processing sends their ID card still (``?kind=id``) without any face
    processing: only the card number is read; the still is kept encrypted for the agent to compare
    with the person by eye and attest.
    """
    session = await customer_session(request)
    if session.face_consent is False and request.query.get("kind") == "id":
        return await _declined_id_still(request, session)
    _need_face_consent(session)
    ident = request.app[IDENTITY]
    service = ident.ready()
    kind = "id" if request.query.get("kind") == "id" else "face"
    face_checked = await _face_checked(request, session) if kind == "id" else None
    data = await _read_image(request)
    if face_checked is not None:
        match = await service.faces.verify(face_checked[1], data)
    else:
        match = await service.faces.verify(data, await _live_frame(request, session.id))
    ok = match.decision == "match"
    sha = await ident.evidence.put(data, "customer.still", {"session": session.id, "accepted": ok, "kind": kind})
    await request.app[AUDIT].append(AuditEvent(
        "identity.customer_still", "customer", f"session:{session.id}", outcome="ok" if ok else "refused",
        session_id=session.id, account=session.account,
        evidence=[sha] if face_checked is None else [sha, face_checked[0]],
        details={"kind": kind, "score": round(match.score, 4), "decision": match.decision,
                 "compared_with": "face_check" if face_checked else "live_video"},
    ))
    if not ok:
        reason = ("the portrait on this card is not the face checked in this call: show your own ID card"
                  if kind == "id" else "the face in the photo is not the person on the video: take it again")
        raise ApiError(422, "still_mismatch", reason, decision=match.decision)
    await _proofs(request).record(session.id, ProofKind.CUSTOMER_STILL, [sha], {"kind": kind})
    return web.json_response({"sha256": sha, "accepted": True})


async def _declined_id_still(request: web.Request, session: CounterSession) -> web.Response:
    ident = request.app[IDENTITY]
    service = ident.ready()
    data = await _read_image(request)
    card = (await service.read_id(data, session.id, faces=False)).result
    assert isinstance(card, IdCardResult)
    number = card.fields.get("number", "")
    account = await request.app[ACCOUNTS].get(session.account) if session.account else None
    matches = bool(number) and account is not None and number == account.holder.id_number
    facts = {"number": number, "number_valid": card.number_valid, "number_matches": matches, "compare_by_eye": True,
             "face_processing": False}
    sha = await ident.evidence.put(data, "customer.id_still", {"session": session.id, "compare_by_eye": True})
    facts_sha = await ident.evidence.put(json.dumps(facts, sort_keys=True).encode(), "customer.id_still.facts",
                                         {"session": session.id})
    details = {"kind": "id", "face_processing": False, "compare_by_eye": True, "number_read": bool(number),
               "number_valid": card.number_valid, "number_matches": matches}
    await request.app[AUDIT].append(AuditEvent(
        "identity.customer_still", "customer", f"session:{session.id}", outcome="ok" if number else "refused",
        session_id=session.id, account=session.account, evidence=[sha, facts_sha], details=details,
        reason=None if number else "card number not legible",
    ))
    if not number:
        raise ApiError(422, "id_unreadable", "the card number cannot be read: hold the card flat, in good light, "
                                             "and take the photo again")
    await _proofs(request).record(session.id, ProofKind.ID_STILL, [sha], {"number_matches": matches})
    return web.json_response({"sha256": sha, "accepted": True, "compare_by_eye": True})


# --- wiring --------------------------------------------------------------------------------------------------


_LOADED: dict[tuple[str, tuple[str, ...], int], IdentityService] = {}
_LOAD_LOCK = threading.Lock()


def load_service(settings: Any) -> IdentityService:
    """The process's identity service: every model session created once (blocking: run it in an executor).

    The models come from ``settings.models_dir`` (checked to be a folder when the settings are loaded);
    unset, the identity package looks in its own places (its cache, packages carrying models)."""
    key = (str(settings.models_dir), tuple(settings.onnx_providers), settings.onnx_threads)
    with _LOAD_LOCK:
        service = _LOADED.get(key)
        if service is None:
            service = IdentityService(settings.models_dir, settings.onnx_providers, settings.onnx_threads)
            service.cards.ocr_engine()
            _LOADED[key] = service
        return service


async def setup(app: web.Application) -> None:
    """Load the models (in an executor) before serving; if they cannot be, /readyz says why."""
    settings = app[SETTINGS]
    ident = IdentityState(app[EVIDENCE])
    app[IDENTITY] = ident
    try:
        ident.service = await asyncio.to_thread(load_service, settings)
        ident.error = None
    except Exception as exc:
        ident.error = f"face and ID models not loaded: {exc}"
        app[NOT_READY]["models"] = ident.error
        log.error("%s", ident.error)
    base = "/api/counter/sessions/{sid}/identity"
    app.router.add_get(base, owned(state))
    app.router.add_post(base + "/face", owned(face_check))
    app.router.add_post(base + "/liveness", owned(liveness_start))
    app.router.add_post(base + "/liveness/{cid}", owned(liveness_evaluate))
    app.router.add_post(base + "/id-card", owned(id_capture))
    app.router.add_post(base + "/attest", owned(attest))
    app.router.add_get(base + "/evidence", owned(evidence_list))
    app.router.add_get(base + "/evidence/{sha}", owned(evidence_image))
    app.router.add_post("/api/customer/identity/still", owned(customer_still))



__all__ = ["IDENTITY", "MAX_IMAGE_BYTES", "Checked", "IdentityState", "setup"]
