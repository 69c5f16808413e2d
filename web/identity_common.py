"""What the identity checks share: the image to check and where it comes from, keeping images in the
evidence store, thumbnails, the audit entry, and raising a session to A2 once it holds the proofs."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from counter.appkeys import IDENTITY, SESSIONS, WITNESS
from counter.audit import AUDIT, AuditEvent
from counter.identity_models import IdentityState
from counter.levels import Level, Method, WhyNot, step_refusal
from counter.proofs import ProofKind, SessionProofs
from counter.sessions import CounterSession, SessionError
from identity import Checked
from identity.evidence import EvidenceNotFound
from identity.images import as_bgr
from web.counter_access import agent_session
from web.errors import ApiError, read_body, read_json

MAX_IMAGE_BYTES = 6 * 1024 * 1024
THUMB_WIDTH = 160


async def own(request: web.Request) -> tuple[CounterSession, str]:
    """The agent's own session of a call connected to them now (identity checks need the live holder)."""
    session = await agent_session(request)
    return session, session.agent


async def read_image(request: web.Request) -> bytes:
    """The request body as an image (refused 400 ``bad_image`` if it cannot be decoded)."""
    data = await read_body(
        request, MAX_IMAGE_BYTES, f"images up to {MAX_IMAGE_BYTES // (1024 * 1024)} MB; send a smaller photo"
    )
    await asyncio.to_thread(as_bgr, data)
    return data


async def image_source(request: web.Request, session: CounterSession, body: Any = None) -> tuple[Any, str]:
    """The image to check: an uploaded still (``image/*`` body) or JSON ``{"source": "live"}`` /
    ``{"source": "customer_still", "sha256": ...}`` (``body``: that JSON if read already)."""
    if request.content_type.startswith("image/"):
        return await read_image(request), "upload"
    if body is None:
        body = await read_json(request, limit=4096)
    not_the_helper(body)
    source = body.get("source") if isinstance(body, dict) else None
    if source == "live":
        return await live_frame(request, session.id), "live"
    if source == "customer_still" and isinstance(body, dict):
        sha = str(body.get("sha256", ""))
        if not await proofs(request).holds(session.id, sha, (ProofKind.CUSTOMER_STILL, ProofKind.ID_STILL)):
            raise ApiError(404, "no_still", "no accepted customer still with that sha256 in this session")
        return await request.app[IDENTITY].evidence.get(sha), "customer_still"
    raise ApiError(400, "bad_request", 'send an image (Content-Type image/jpeg) or {"source": "live"}')


def not_the_helper(body: Any) -> None:
    """Refuse a check asked of the helper's camera."""
    if isinstance(body, dict) and body.get("source") == "helper":
        # Identity is the holder's: the helper's camera is recorded but never checked, never matched.
        raise ApiError(409, "not_holder", "identity checks use the account holder's camera only, "
                                          "never the helper's: ask the holder to face their camera")


async def live_frame(request: web.Request, call_id: str) -> np.ndarray[Any, Any]:
    """The customer's latest frame from the witness of ``call_id`` (waiting up to 5 s for one)."""
    _, frame = await request.app[WITNESS].call(call_id).grab(within=5.0)
    return frame


async def jpeg(frame: np.ndarray[Any, Any]) -> bytes:
    """``frame`` as a JPEG, encoded in an executor."""
    _, buf = await asyncio.to_thread(cv2.imencode, ".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return bytes(buf.tobytes())


async def kept(ident: IdentityState, checked: Checked, image: Any, kind: str, session_id: str,
               facts: dict[str, Any] | None = None) -> Checked:
    """Store the image (and derived facts) encrypted in this installation's evidence store."""
    data = await jpeg(image) if isinstance(image, np.ndarray) else bytes(image)
    shas = [await ident.evidence.put(data, kind, {"session": session_id})]
    if facts is not None:
        blob = json.dumps(facts, ensure_ascii=False, sort_keys=True).encode()
        shas.append(await ident.evidence.put(blob, kind + ".facts", {"session": session_id}))
    return Checked(checked.result, (*checked.evidence, *shas))


async def thumbnail(image: Any) -> str:
    """A small JPEG data URL of ``image``, made in an executor (OpenCV work stays off the loop)."""
    return await asyncio.to_thread(_thumbnail_sync, image)


def _thumbnail_sync(image: Any) -> str:
    bgr = as_bgr(image)
    scale = THUMB_WIDTH / bgr.shape[1]
    small = cv2.resize(bgr, (THUMB_WIDTH, max(1, int(bgr.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


async def audit(request: web.Request, action: str, actor: str, session: CounterSession, outcome: str,
                details: dict[str, Any], evidence: tuple[str, ...], reason: str | None = None) -> int:
    """An agent's identity step in the audit log; its sequence number."""
    receipt = await request.app[AUDIT].append(AuditEvent(
        action, "agent", actor, outcome=outcome, session_id=session.id, account=session.account,
        details=details, evidence=list(evidence), reason=reason,
    ))
    return receipt.seq


def proofs(request: web.Request) -> SessionProofs:
    """What sessions proved, kept in the database."""
    return request.app[SESSIONS].proofs


async def maybe_a2(request: web.Request, session: CounterSession, actor: str) -> tuple[CounterSession, str | None]:
    """A2 once this session holds both a face match and a passed liveness; else the session as it is.
    The check itself stands either way: a refused raise is said beside it (``level_refused``)."""
    face = await proofs(request).latest(session.id, ProofKind.FACE_MATCH)
    alive = await proofs(request).latest(session.id, ProofKind.LIVENESS)
    if face is None or alive is None:
        return session, None
    try:
        return await request.app[SESSIONS].raise_level(
            session.id, Level.A2, [face.sha, alive.sha], Method.FACE, recorded_by=actor
        ), None
    except SessionError as exc:  # the check stands: the refusal is said beside it
        return await request.app[SESSIONS].get(session.id), exc.reason


def refuse(why: WhyNot | None) -> None:
    """Answer 409 with the rule's code and words (:mod:`counter.levels` decides)."""
    if why is not None:
        raise ApiError(409, why.code, why.en, reason_zh=why.zh)


def need_consent(session: CounterSession) -> None:
    """Refuse a face step the session may not take (no consent, no line...)."""
    refuse(step_refusal(session, Method.FACE))


def masked_number(number: str) -> str:
    """A document number as the console shows it: 3 + 4 of a resident ID number, 2 + 2 of a passport's."""
    keep = (3, 4) if len(number) == 18 else (2, 2)
    return number[: keep[0]] + "*" * max(len(number) - sum(keep), 3) + number[-keep[1] :]


async def face_checked(request: web.Request, session: CounterSession) -> tuple[str, bytes]:
    """The sha and image of this session's last matching face check: what an ID card's portrait is
    compared with.  Never the current live frame: while the card is held to the camera, that frame
    is the card itself, and the portrait would be compared with itself."""
    face = await proofs(request).latest(session.id, ProofKind.FACE_MATCH)
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
