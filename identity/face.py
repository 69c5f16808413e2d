"""Face pipeline on onnxruntime: YuNet detection, quality gates, ArcFace alignment, SFace embedding, matching.

The threshold principle: OpenCV publishes a cosine operating point of 0.363 for SFace on LFW
(``cv2.FaceRecognizerSF`` documentation; 99.40 % accuracy there).  That point is where accuracy is
best, not where false accepts are rare, and a score also moves with detector jitter: moving the 5
landmarks by 1 px at detection scale changes a pair's score with a standard deviation of 0.015
(median) to 0.026 (95th percentile) on ``../shared/faces``.  An impostor just under the published point
must not be pushed over by that jitter, so we accept at the published point plus twice the 95th
percentile jitter: 0.363 + 2 x 0.026 = 0.415.  The value was not tuned to the test
identities; ``bench/identity.py`` reports the genuine and impostor margins around it.

Detection and alignment are in :mod:`identity.facedetect`, the quality gates in
:mod:`identity.facequality`; their names are importable from here too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar, cast

import cv2
import numpy as np
import numpy.typing as npt

from identity.facedetect import (
    ARCFACE_TEMPLATE,
    STRIDES,
    YUNET_SIZE,
    Face,
    FloatArray,
    align,
    decode_yunet,
    letterbox,
    similarity_transform,
)
from identity.facequality import QUALITY_MESSAGES, FaceQuality, QualityIssue, QualityLimits, assess, issue
from identity.images import Image, as_bgr
from identity.models import ModelRegistry

__all__ = [
    "ARCFACE_TEMPLATE",
    "BLOCKING",
    "JITTER_MARGIN",
    "MATCH_THRESHOLD",
    "PUBLISHED_THRESHOLD",
    "QUALITY_MESSAGES",
    "STRIDES",
    "YUNET_SIZE",
    "Decision",
    "Face",
    "FaceEngine",
    "FaceMatch",
    "FaceQuality",
    "FloatArray",
    "QualityIssue",
    "QualityLimits",
    "Template",
    "TemplateCache",
    "align",
    "as_embedding",
    "assess",
    "cosine",
    "decode_yunet",
    "issue",
    "letterbox",
    "similarity_transform",
]

P = ParamSpec("P")
T = TypeVar("T")

#: OpenCV's published SFace cosine operating point on LFW.
PUBLISHED_THRESHOLD = 0.363
#: Twice the 95th-percentile score jitter under 1 px landmark noise (see the module docstring).
JITTER_MARGIN = 0.052
#: The shipped cosine threshold: published point plus jitter margin.
MATCH_THRESHOLD = PUBLISHED_THRESHOLD + JITTER_MARGIN

Decision = Literal["match", "no_match", "retry"]


@dataclass(frozen=True)
class FaceMatch:
    """Result of comparing a live face with a reference photo."""

    score: float
    threshold: float
    decision: Decision
    live_quality: FaceQuality
    reference_quality: FaceQuality
    notes: tuple[QualityIssue, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary (no template, no image)."""
        return {
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "decision": self.decision,
            "notes": [{"code": n.code, "en": n.en, "zh": n.zh} for n in self.notes],
            "live": self.live_quality.to_json(),
            "reference": self.reference_quality.to_json(),
        }


def cosine(a: FloatArray, b: FloatArray) -> float:
    """Cosine similarity of two embeddings."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


Template = tuple[FaceQuality, FloatArray | None]


def as_embedding(reference: Image | FloatArray) -> FloatArray | None:
    """``reference`` when it is a precomputed embedding (a 1-d float32 vector), None when it is an image."""
    if isinstance(reference, np.ndarray) and reference.dtype == np.float32 and reference.ndim == 1:
        return cast(FloatArray, reference)
    return None


class TemplateCache:
    """Embeddings of encoded photos (the real-name photo on file, evidence stills) by their sha256.

    A reference photo does not change between checks, so its detection and embedding are done
    once: a face check is then one detect and one embed of the live frame.  Templates are
    biometric data: kept in memory only, never logged or persisted, at most ``size`` of them and
    each for ``ttl_s`` seconds.  Keys are content hashes, so a replaced photo is simply a new key.
    """

    def __init__(self, size: int = 256, ttl_s: float = 1800.0) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, Template]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(image: Image) -> str | None:
        """The cache key of an encoded image (None for decoded frames: live video is never cached)."""
        if isinstance(image, bytes | bytearray | memoryview):
            return hashlib.sha256(image).hexdigest()
        return None

    def get(self, key: str) -> Template | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                self._entries.pop(key, None)
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: str, template: Template) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl_s, template)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every template."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: Issues on the live image that make a decision meaningless: the customer is asked to retry.
BLOCKING = frozenset({"no_face", "two_faces", "too_dark", "blurred", "face_too_small", "not_frontal"})


class FaceEngine:
    """Detect, assess, align, embed and match faces; async methods run the models in an executor.

    One engine holds one session per model (created once).  The default executor is a single
    worker thread: onnxruntime already uses the cores inside each call, so queueing calls gives
    the best throughput on small machines.
    """

    def __init__(
        self,
        registry: ModelRegistry | None = None,
        *,
        models_dir: Path | None = None,
        threshold: float = MATCH_THRESHOLD,
        limits: QualityLimits = QualityLimits(),
        executor: concurrent.futures.Executor | None = None,
        templates: TemplateCache | None = None,
    ) -> None:
        self.registry = registry or ModelRegistry(models_dir)
        self.threshold = threshold
        self.limits = limits
        self.templates = templates if templates is not None else TemplateCache()
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="identity")
        self._own_executor = executor is None
        self._yunet = self.registry.session("yunet")
        self._sface = self.registry.session("sface")

    @property
    def executor(self) -> concurrent.futures.Executor:
        return self._executor

    def close(self) -> None:
        """Stop the engine's own executor (sessions are freed with the registry)."""
        if self._own_executor:
            self._executor.shutdown(wait=False)

    async def run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``func`` in the engine's executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))

    # Synchronous stages (called in the executor) ------------------------------------------

    def detect_sync(self, image: Image, score_threshold: float = 0.6) -> list[Face]:
        """All faces in ``image``, best score first."""
        bgr = as_bgr(image)
        blob, scale = letterbox(bgr)
        names = [o.name for o in self._yunet.get_outputs()]
        raw = self._yunet.run(names, {"input": blob})
        size = (blob.shape[2], blob.shape[3])
        return decode_yunet(dict(zip(names, raw, strict=True)), scale, score_threshold, size=size)

    def embed_aligned_sync(self, aligned: npt.NDArray[np.uint8]) -> FloatArray:
        """The L2-normalised 128-d SFace embedding of an aligned 112x112 BGR face."""
        blob = cv2.dnn.blobFromImage(aligned, swapRB=True)
        vec: FloatArray = self._sface.run(["fc1"], {"data": blob})[0][0]
        return (vec / (np.linalg.norm(vec) + 1e-12)).astype(np.float32)

    def analyse_sync(self, image: Image) -> tuple[FaceQuality, npt.NDArray[np.uint8] | None]:
        """Quality of the main face and its aligned crop (None when there is no face)."""
        bgr = as_bgr(image)
        faces = self.detect_sync(bgr)
        if not faces:
            return assess(faces, None, self.limits), None
        aligned = align(bgr, max(faces, key=lambda f: f.area))
        return assess(faces, aligned, self.limits), aligned

    def embed_sync(self, image: Image) -> Template:
        """Quality and embedding of the main face of ``image`` (remembered for encoded images)."""
        key = self.templates.key(image)
        if key is not None and (known := self.templates.get(key)) is not None:
            return known
        quality, aligned = self.analyse_sync(image)
        template = quality, None if aligned is None else self.embed_aligned_sync(aligned)
        if key is not None:
            self.templates.put(key, template)
        return template

    def verify_sync(self, live: Image, reference: Image | FloatArray) -> FaceMatch:
        """Compare the live image with a reference photo (or its precomputed embedding)."""
        live_q, live_vec = self.embed_sync(live)
        ref_vec = as_embedding(reference)
        if ref_vec is not None:
            ref_q = FaceQuality(None, 1, ())
        else:
            ref_q, ref_vec = self.embed_sync(cast(Image, reference))
        return self.decide(live_q, live_vec, ref_q, ref_vec)

    def decide(
        self, live_q: FaceQuality, live_vec: FloatArray | None, ref_q: FaceQuality, ref_vec: FloatArray | None
    ) -> FaceMatch:
        """The decision from both sides' quality and embeddings."""
        notes = tuple(i for i in live_q.issues if i.code in BLOCKING)
        ref_notes = tuple(i for i in ref_q.issues if i.code == "no_face")
        if live_vec is None or ref_vec is None:
            return FaceMatch(0.0, self.threshold, "retry", live_q, ref_q, notes + ref_notes)
        score = cosine(live_vec, ref_vec)
        decision: Decision = "match" if score >= self.threshold else "no_match"
        if notes:
            decision = "retry"
        return FaceMatch(score, self.threshold, decision, live_q, ref_q, notes)

    # Async API ------------------------------------------------------------------------------

    async def detect(self, image: Image) -> list[Face]:
        """All faces in ``image`` (in the executor)."""
        return await self.run(self.detect_sync, image)

    async def check_quality(self, image: Image) -> FaceQuality:
        """Quality gates on the main face of ``image``."""
        quality, _ = await self.run(self.analyse_sync, image)
        return quality

    async def embed(self, image: Image) -> tuple[FaceQuality, FloatArray | None]:
        """Quality and embedding of the main face (the embedding is a template: never log it)."""
        return await self.run(self.embed_sync, image)

    async def verify(self, live: Image, reference: Image | FloatArray) -> FaceMatch:
        """Compare a live image with a reference photo or embedding."""
        return await self.run(self.verify_sync, live, reference)
