"""The agent's identity checks on their session: the face against the real-name photo, the liveness
challenge, the ID card, and the attestation when the customer declined face processing."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
from aiohttp import web

from counter.appkeys import ACCOUNTS, IDENTITY, SESSIONS, WITNESS
from counter.audit import AUDIT
from counter.levels import Level, Method, document_refusal, id_method, identity_path, step_refusal
from counter.proofs import ProofKind
from counter.sessions import SessionError
from identity import Challenge, FaceMatch, IdCardResult, LivenessResult
from signaling.aio import SIGNALING
from signaling.protocol import NoticeCode
from signaling.witness import WitnessError
from web.counter_access import agent_session, session_json
from web.errors import ApiError, read_json
from web.identity_common import (
    audit,
    face_checked,
    image_source,
    jpeg,
    kept,
    masked_number,
    maybe_a2,
    need_consent,
    not_the_helper,
    own,
    proofs,
    refuse,
    thumbnail,
)
from web.owners import owned

BASE = "/api/counter/sessions/{sid}/identity"
routes = web.RouteTableDef()


@routes.get(BASE)
@owned
async def state(request: web.Request) -> web.Response:
    """Where the session's identity checks stand, and whether they can run here now."""
    session = await agent_session(request, live=False)
    ident = request.app[IDENTITY]
    face = await proofs(request).latest(session.id, ProofKind.FACE_MATCH)
    alive = await proofs(request).latest(session.id, ProofKind.LIVENESS)
    witness = request.app[WITNESS].calls.get(session.id)
    return web.json_response({
        "session": session_json(session),
        "ready": ident.service is not None,
        "not_ready_reason": ident.error,
        "path": identity_path(session).value,
        "face_matched_at": face.timestamp if face else None,
        "liveness_passed_at": alive.timestamp if alive else None,
        "live_video": witness is not None and "customer" in witness.legs,
    })


@routes.post(BASE + "/face")
@owned
async def face_check(request: web.Request) -> web.Response:
    """Match the live face (witness frame or an uploaded still) with the account's real-name photo."""
    session, actor = await own(request)
    body = None if request.content_type.startswith("image/") else await read_json(request, limit=4096)
    not_the_helper(body)
    need_consent(session)
    ident = request.app[IDENTITY]
    service = ident.ready()
    assert session.account is not None
    reference = await request.app[ACCOUNTS].holder_photo(session.account)
    if reference is None:
        raise ApiError(409, "no_reference", "no real-name photo on file for this line: use the ID card")
    image, source = await image_source(request, session, body)
    checked = await service.verify_face(image, reference, session.id)
    checked = await kept(ident, checked, image, "face.live", session.id)
    match = checked.result
    assert isinstance(match, FaceMatch)
    ok = match.decision == "match"
    if ok:  # the live image the server matched and kept: this session's face proof
        await proofs(request).record(session.id, ProofKind.FACE_MATCH, checked.evidence[:1])
    seq = await audit(request, "identity.face_check", actor, session, "ok" if ok else "refused",
                      {"source": source, "score": round(match.score, 4), "threshold": match.threshold,
                       "decision": match.decision, "notes": [n.code for n in match.notes]}, checked.evidence)
    session, refused = await maybe_a2(request, session, actor) if ok else (session, None)
    return web.json_response({"result": match.to_json(), "evidence": list(checked.evidence), "audit_seq": seq,
                              "thumbnail": await thumbnail(image), "session": session_json(session),
                              "level_refused": refused})


@routes.post(BASE + "/liveness")
@owned
async def liveness_start(request: web.Request) -> web.Response:
    """A new challenge; the witness keeps customer frames until it is evaluated."""
    session, _ = await own(request)
    need_consent(session)
    challenge = request.app[IDENTITY].ready().start_liveness()
    call = request.app[WITNESS].call(session.id)
    # kept in the database: the node that evaluates it need not be this one
    await proofs(request).save_challenge(session.id, challenge.id, challenge.state(), challenge.deadline)
    call.start_collecting(challenge.id, seconds=challenge.deadline - time.time() + 1.0)
    return web.json_response({"challenge": challenge.to_json()}, status=201)


@routes.post(BASE + "/liveness/{cid}")
@owned
async def liveness_evaluate(request: web.Request) -> web.Response:
    """The challenge judged on the frames the witness kept; the performer must be the holder on file."""
    session, actor = await own(request)
    need_consent(session)
    service = request.app[IDENTITY].ready()
    cid = request.match_info["cid"]
    assert session.account is not None
    # The performer must be the holder on file: no passing the face check and leaving the movements
    # to someone else.  Without a real-name photo there is no face path to A2 anyway.
    reference = await request.app[ACCOUNTS].holder_photo(session.account)
    frames = request.app[WITNESS].call(session.id).collected(cid)
    challenge = await proofs(request).take_challenge(session.id, cid)
    if challenge is None:
        raise ApiError(404, "no_challenge", f"unknown or used liveness challenge {cid!r}: start a new one")
    checked = await service.evaluate_liveness(Challenge.from_state(challenge), frames, session_id=session.id,
                                              reference=reference)
    if frames:
        checked = await kept(request.app[IDENTITY], checked, frames[0][1], "face.liveness", session.id)
    anchor = checked.result.anchor_frame if isinstance(checked.result, LivenessResult) else None
    if anchor is not None:  # the frame matched with the photo on file: who performed the challenge
        checked = await kept(request.app[IDENTITY], checked, frames[anchor][1], "face.liveness.anchor", session.id)
    result = checked.result
    assert isinstance(result, LivenessResult)
    if result.passed:  # the frames kept from the live video (first, and the one matched with the photo)
        await proofs(request).record(session.id, ProofKind.LIVENESS, checked.evidence)
    seq = await audit(request, "identity.liveness", actor, session, "ok" if result.passed else "refused",
                      {"challenge": list(result.completed), "frames": result.frames,
                       "passive_score": result.passive_score, "reasons": list(result.reasons),
                       "identity": result.identity_json()}, checked.evidence)
    session, refused = await maybe_a2(request, session, actor) if result.passed else (session, None)
    if not result.passed:
        # the customer is told it failed and what comes next, in their page's words for the code
        await request.app[SIGNALING].notify_customer(
            session.id, NoticeCode.LIVENESS_FAILED,
            "The movements check did not pass; the agent will try again or check another way.")
    shown = frames[result.anchor_frame if result.anchor_frame is not None else 0][1] if frames else None
    thumb = await thumbnail(shown) if shown is not None else ""
    return web.json_response({"result": result.to_json(), "evidence": list(checked.evidence), "audit_seq": seq,
                              "thumbnail": thumb, "session": session_json(session), "level_refused": refused})


@routes.post(BASE + "/id-card")
@owned
async def id_capture(request: web.Request) -> web.Response:
    """Read the ID card; its number must be the account holder's and its portrait the face that matched
    in this session's face check (refused with ``face_check_first`` before one has)."""
    session, actor = await own(request)
    if session.account is None:
        raise ApiError(409, "no_account", "claim the customer's line first")
    ident = request.app[IDENTITY]
    service = ident.ready()
    face = await face_checked(request, session) if session.face_consent is True else None
    image, source = await image_source(request, session)
    checked = await service.read_id(image, session.id, faces=session.face_consent is True)
    card = checked.result
    assert isinstance(card, IdCardResult)
    checked = await kept(ident, checked, image, "id_card.image", session.id, card.to_json())
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
    if face is not None:
        face_sha, face_image = face
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
        await proofs(request).record(session.id, ProofKind.ID_CARD, checked.evidence, {"document": card.document})
        try:
            session = await request.app[SESSIONS].raise_level(session.id, Level.A3, list(evidence), method,
                                                              recorded_by=actor)
        except SessionError as exc:  # the card stands: the refusal is one of the reasons given
            reasons.append(exc.code)
    ok = not reasons
    seq = await audit(request, "identity.id_capture", actor, session, "ok" if ok else "refused",
                      {"source": source, "number_valid": card.number_valid, "number_matches": number_matches,
                       "portrait": None if portrait is None else {"score": portrait["score"],
                                                                   "decision": portrait["decision"],
                                                                   "compared_with": "face_check"},
                       "reasons": reasons, "method": method.value}, evidence)
    card_json = card.to_json()
    if number:
        card_json["fields"] = {**card.fields, "number": masked_number(number)}
    return web.json_response({"result": card_json, "accepted": ok, "reasons": reasons, "portrait_match": portrait,
                              "evidence": list(evidence), "audit_seq": seq, "thumbnail": await thumbnail(image),
                              "session": session_json(session)})


@routes.post(BASE + "/attest")
@owned
async def attest(request: web.Request) -> web.Response:
    """Face declined: the agent attests that the ID card shown on camera is the live person's (A2)."""
    session, actor = await own(request)
    refuse(step_refusal(session, Method.ATTESTATION))
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
        sha = await request.app[IDENTITY].evidence.put(await jpeg(frame), "attestation.frame",
                                                       {"session": session.id})
        await proofs(request).record(session.id, ProofKind.ATTESTATION, [sha])
        shas.append(sha)
    stills = [p.sha for p in await proofs(request).of_session(session.id, (ProofKind.ID_STILL,))]
    evidence = (*shas, *stills)
    if not evidence:
        raise ApiError(409, "no_evidence", "there is nothing to attest on: no live video of the call here and no "
                       "ID card photo from the customer's page; ask the customer to send it (show ID step)")
    session = await request.app[SESSIONS].raise_level(session.id, Level.A2, list(evidence), Method.ATTESTATION,
                                                      recorded_by=actor)
    viewed = await request.app[AUDIT].search(session_id=session.id, action="identity.evidence_viewed",
                                             actor_id=actor)
    seq = await audit(request, "identity.attestation", actor, session, "ok",
                      {"statement": "id_card_matches_person", "face": "declined", "id_stills": len(stills),
                       "live_frame": frame is not None, "evidence_viewer_opened": len(viewed)}, evidence)
    return web.json_response({"evidence": list(evidence), "audit_seq": seq,
                              "thumbnail": await thumbnail(frame) if frame is not None else "",
                              "session": session_json(session)})
