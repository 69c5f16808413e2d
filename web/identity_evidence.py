"""The evidence a session gathered: the agent's viewer (the customer's ID still and live face at full
size beside the real-name photo on file), and the stills the customer's own page sends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from counter.appkeys import ACCOUNTS, IDENTITY
from counter.audit import AUDIT, AuditEvent
from counter.levels import face_processing_refusal
from counter.proofs import ProofKind
from counter.sessions import CounterSession
from identity import IdCardResult
from identity.evidence import EvidenceNotFound
from identity.images import ImageError, as_bgr
from web.counter_access import customer_session
from web.errors import ApiError
from web.identity_checks import BASE
from web.identity_common import audit, face_checked, live_frame, masked_number, own, proofs, read_image, refuse
from web.owners import owned

routes = web.RouteTableDef()

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
    for proof in reversed(await proofs(request).of_session(session.id, tuple(_VIEWABLE))):
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
                    fields["number"] = masked_number(str(fields["number"]))
            continue
        kind = _VIEWABLE[proof.kind]
        if proof.kind is ProofKind.CUSTOMER_STILL and info.meta.get("kind") == "id":
            kind = "id_still"
        items.append({"kind": kind, "sha256": proof.sha, "at": proof.at})
    return items, fields


def _size(data: bytes) -> tuple[int, int]:
    image = as_bgr(data)
    return int(image.shape[1]), int(image.shape[0])


@routes.get(BASE + "/evidence")
@owned
async def evidence_list(request: web.Request) -> web.Response:
    """The evidence viewer: the customer's ID still and live face at full size beside the real-name photo
    on file, with the ID card's fields.  The session's own agent only, while the call is live; opening
    it is audited (``identity.evidence_viewed``) and the attestation cites that entry."""
    session, actor = await own(request)
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
    seq = await audit(request, "identity.evidence_viewed", actor, session, "ok",
                      {"images": [i["kind"] for i in out], "fields": sorted(fields)},
                      tuple(i["sha256"] for i in out if i["sha256"]))
    return web.json_response({"images": out, "fields": fields, "audit_seq": seq},
                             headers={"Cache-Control": "no-store"})


@routes.get(BASE + "/evidence/{sha}")
@owned
async def evidence_image(request: web.Request) -> web.Response:
    """One image of the viewer, decrypted from the evidence store, at the size it was stored."""
    session, _ = await own(request)
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


@routes.post("/api/customer/identity/still")
@owned
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
    refuse(face_processing_refusal(session))
    ident = request.app[IDENTITY]
    service = ident.ready()
    kind = "id" if request.query.get("kind") == "id" else "face"
    face = await face_checked(request, session) if kind == "id" else None
    data = await read_image(request)
    if face is not None:
        match = await service.faces.verify(face[1], data)
    else:
        match = await service.faces.verify(data, await live_frame(request, session.id))
    ok = match.decision == "match"
    sha = await ident.evidence.put(data, "customer.still", {"session": session.id, "accepted": ok, "kind": kind})
    await request.app[AUDIT].append(AuditEvent(
        "identity.customer_still", "customer", f"session:{session.id}", outcome="ok" if ok else "refused",
        session_id=session.id, account=session.account,
        evidence=[sha] if face is None else [sha, face[0]],
        details={"kind": kind, "score": round(match.score, 4), "decision": match.decision,
                 "compared_with": "face_check" if face else "live_video"},
    ))
    if not ok:
        reason = ("the portrait on this card is not the face checked in this call: show your own ID card"
                  if kind == "id" else "the face in the photo is not the person on the video: take it again")
        raise ApiError(422, "still_mismatch", reason, decision=match.decision)
    await proofs(request).record(session.id, ProofKind.CUSTOMER_STILL, [sha], {"kind": kind})
    return web.json_response({"sha256": sha, "accepted": True})


async def _declined_id_still(request: web.Request, session: CounterSession) -> web.Response:
    ident = request.app[IDENTITY]
    service = ident.ready()
    data = await read_image(request)
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
    await proofs(request).record(session.id, ProofKind.ID_STILL, [sha], {"number_matches": matches})
    return web.json_response({"sha256": sha, "accepted": True, "compare_by_eye": True})
