"""The identity API used by the agent console: face check, liveness challenge, ID capture, evidence."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from identity.antispoof import AntiSpoof
from identity.evidence import EvidenceStore
from identity.face import FaceEngine, FaceMatch, FloatArray
from identity.idcard import IdCardReader, IdCardResult
from identity.images import Image, as_bgr
from identity.liveness import Challenge, LivenessChecker, LivenessResult, new_challenge
from identity.models import ModelRegistry


@dataclass(frozen=True)
class Checked:
    """A check's result and the sha256 of the evidence it relied on (for the audit entry)."""

    result: FaceMatch | LivenessResult | IdCardResult
    evidence: tuple[str, ...]


class IdentityService:
    """One per process: models loaded once, inference in one executor, evidence stored encrypted."""

    def __init__(
        self,
        models_dir: Path | None = None,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        evidence_store: EvidenceStore | None = None,
    ) -> None:
        self.registry = ModelRegistry(models_dir, providers, threads)
        self.faces = FaceEngine(self.registry)
        self.liveness = LivenessChecker(self.faces, AntiSpoof(self.registry))
        self.cards = IdCardReader(self.faces, threads=self.registry.threads)
        self.evidence = evidence_store

    def close(self) -> None:
        """Stop the executor."""
        self.faces.close()

    async def _keep(self, image: Image, kind: str, meta: dict[str, object]) -> tuple[str, ...]:
        if self.evidence is None:
            return ()
        data = bytes(image) if not isinstance(image, np.ndarray) else _jpeg(as_bgr(image))
        return (await self.evidence.put(data, kind, meta),)

    async def verify_face(self, live: Image, reference: Image | FloatArray, session_id: str = "") -> Checked:
        """Match the live face against the reference photo (or the ID portrait); keeps the live image."""
        match = await self.faces.verify(live, reference)
        kept = await self._keep(live, "face.live", {"session": session_id, "decision": match.decision})
        return Checked(match, kept)

    def start_liveness(self, length: int = 3) -> Challenge:
        """A new random challenge; the customer's page shows its instructions.

        Nothing is kept here: the caller stores :meth:`Challenge.state` where every node can read it,
        and hands the challenge back to :meth:`evaluate_liveness`, once.
        """
        return new_challenge(length, now=time.time())

    async def evaluate_liveness(
        self,
        challenge: Challenge,
        frames: Sequence[tuple[float, Image]],
        *,
        mirrored: bool = False,
        session_id: str = "",
        reference: Image | FloatArray | None = None,
    ) -> Checked:
        """Check timestamped live-video frames against a challenge; keeps one frame.
        With a ``reference`` (the real-name photo on file) the performer must also be that person."""
        result = await self.liveness.check(challenge, frames, mirrored=mirrored, reference=reference)
        kept = await self._keep(frames[0][1], "face.liveness", {"session": session_id}) if frames else ()
        return Checked(result, kept)

    async def read_id(
        self, image: Image, session_id: str = "", today: dt.date | None = None, *, faces: bool = True
    ) -> Checked:
        """Read an ID card photo; keeps the photo and the derived facts.  ``faces=False``: no face
        detection (no portrait), for customers who declined face processing."""
        result = await self.cards.read(image, today, faces=faces)
        kept = await self._keep(image, "id_card.image", {"session": session_id})
        if self.evidence is not None:
            facts = str(result.to_json()).encode()
            kept += (await self.evidence.put(facts, "id_card.facts", {"session": session_id}),)
        return Checked(result, kept)


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise ValueError("could not encode the image as JPEG")
    return bytes(buf.tobytes())
