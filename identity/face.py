"""Face pipeline on onnxruntime: YuNet detection, quality gates, ArcFace alignment, SFace embedding, matching.

The threshold principle: OpenCV publishes a cosine operating point of 0.363 for SFace on LFW
(``cv2.FaceRecognizerSF`` documentation; 99.40 % accuracy there).  That point is where accuracy is
best, not where false accepts are rare, and a score also moves with detector jitter: moving the 5
landmarks by 1 px at detection scale changes a pair's score with a standard deviation of 0.015
(median) to 0.026 (95th percentile) on ``../shared/faces``.  An impostor just under the published point
must not be pushed over by that jitter, so we accept at the published point plus twice the 95th
percentile jitter: 0.363 + 2 x 0.026 = 0.415.  The value was not tuned to the test
identities; ``bench/identity.py`` reports the genuine and impostor margins around it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, cast

import cv2
import numpy as np
import numpy.typing as npt

from identity.images import Image, as_bgr
from identity.models import ModelRegistry

P = ParamSpec("P")
T = TypeVar("T")

FloatArray = npt.NDArray[np.float32]

#: OpenCV's published SFace cosine operating point on LFW.
PUBLISHED_THRESHOLD = 0.363
#: Twice the 95th-percentile score jitter under 1 px landmark noise (see the module docstring).
JITTER_MARGIN = 0.052
#: The shipped cosine threshold: published point plus jitter margin.
MATCH_THRESHOLD = PUBLISHED_THRESHOLD + JITTER_MARGIN
YUNET_SIZE = 640
STRIDES = (8, 16, 32)
#: ArcFace 112x112 template: left eye, right eye, nose tip, left and right mouth corners (image left/right).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class QualityIssue:
    """Why a face image cannot be used, in words the agent and the customer can act on."""

    code: str
    en: str
    zh: str


QUALITY_MESSAGES: dict[str, tuple[str, str]] = {
    "no_face": ("No face found: look straight into the camera.", "未检测到人脸：请正对摄像头。"),
    "two_faces": (
        "More than one face: only the customer should be in view.",
        "检测到多张人脸：请只让本人出现在画面中。",
    ),
    "too_dark": ("Too dark: turn on a light or face a window.", "光线太暗：请打开灯或面向窗户。"),
    "blurred": ("Blurred: hold the phone still for a moment.", "画面模糊：请保持手机稳定。"),
    "face_too_small": ("Face too small: move closer to the camera.", "人脸太小：请靠近摄像头。"),
    "not_frontal": ("Turn to face the camera.", "请转向正对摄像头。"),
}


def issue(code: str) -> QualityIssue:
    """The :class:`QualityIssue` for ``code``."""
    en, zh = QUALITY_MESSAGES[code]
    return QualityIssue(code, en, zh)


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds of the quality gates (on the aligned 112x112 face unless said otherwise)."""

    min_brightness: float = 60.0
    min_sharpness: float = 60.0
    min_eye_distance: float = 28.0
    max_yaw: float = 0.35
    pitch_range: tuple[float, float] = (0.25, 0.75)
    second_face_ratio: float = 0.25


@dataclass(frozen=True)
class Face:
    """One detected face in image pixels."""

    box: tuple[float, float, float, float]
    landmarks: FloatArray
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    def pose(self) -> tuple[float, float]:
        """(yaw, pitch) ratios from the 5 landmarks, in the frame where the eyes are level.

        yaw: nose offset from the eye midpoint over the eye distance (0 frontal, + nose towards image
        right); pitch: nose height between the eye line (0) and the mouth line (1), about 0.5 frontal.
        """
        pts = self.landmarks.astype(np.float64)
        eye_vec = pts[1] - pts[0]
        dist = float(np.linalg.norm(eye_vec)) or 1.0
        ux = eye_vec / dist
        uy = np.array([-ux[1], ux[0]])
        eye_mid = (pts[0] + pts[1]) / 2
        mouth_mid = (pts[3] + pts[4]) / 2
        nose = pts[2] - eye_mid
        yaw = float(nose @ ux) / dist
        mouth_h = float((mouth_mid - eye_mid) @ uy) or 1.0
        pitch = float(nose @ uy) / mouth_h
        return yaw, pitch


@dataclass(frozen=True)
class FaceQuality:
    """Quality of the main face of an image."""

    face: Face | None
    faces: int
    issues: tuple[QualityIssue, ...]
    brightness: float | None = None
    sharpness: float | None = None
    yaw: float | None = None
    pitch: float | None = None

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def codes(self) -> list[str]:
        return [i.code for i in self.issues]


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
            "live": _quality_json(self.live_quality),
            "reference": _quality_json(self.reference_quality),
        }


def _quality_json(q: FaceQuality) -> dict[str, object]:
    return {
        "faces": q.faces,
        "issues": q.codes,
        "brightness": None if q.brightness is None else round(q.brightness, 1),
        "sharpness": None if q.sharpness is None else round(q.sharpness, 1),
        "yaw": None if q.yaw is None else round(q.yaw, 3),
        "pitch": None if q.pitch is None else round(q.pitch, 3),
        "box": None if q.face is None else [round(v, 1) for v in q.face.box],
    }


def _nms(boxes: FloatArray, scores: FloatArray, iou: float) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter + 1e-9) <= iou]
    return keep


@functools.lru_cache(maxsize=16)
def _grids(height: int, width: int) -> dict[int, tuple[FloatArray, FloatArray]]:
    """Column and row of every anchor, per stride, for a ``height`` x ``width`` input."""
    out: dict[int, tuple[FloatArray, FloatArray]] = {}
    for s in STRIDES:
        rows, cols = np.mgrid[0 : height // s, 0 : width // s]
        out[s] = (cols.reshape(-1).astype(np.float32), rows.reshape(-1).astype(np.float32))
    return out


def decode_yunet(
    outputs: dict[str, FloatArray],
    scale: float,
    score_threshold: float = 0.6,
    nms_threshold: float = 0.3,
    size: tuple[int, int] = (YUNET_SIZE, YUNET_SIZE),
) -> list[Face]:
    """Faces from YuNet's raw outputs for a ``size`` (height, width) input scaled by ``scale``, best first."""
    grids = _grids(*size)
    boxes: list[FloatArray] = []
    kps: list[FloatArray] = []
    scores: list[FloatArray] = []
    for s in STRIDES:
        cls = np.clip(outputs[f"cls_{s}"][0, :, 0], 0, 1)
        obj = np.clip(outputs[f"obj_{s}"][0, :, 0], 0, 1)
        score = np.sqrt(cls * obj)
        sel = np.nonzero(score >= score_threshold)[0]
        if not sel.size:
            continue
        cols, rows = grids[s][0][sel], grids[s][1][sel]
        bb = outputs[f"bbox_{s}"][0, sel]
        cx, cy = (cols + bb[:, 0]) * s, (rows + bb[:, 1]) * s
        w, h = np.exp(bb[:, 2]) * s, np.exp(bb[:, 3]) * s
        boxes.append(np.stack([cx - w / 2, cy - h / 2, w, h], axis=1))
        kp = outputs[f"kps_{s}"][0, sel].reshape(-1, 5, 2)
        kps.append(np.stack([(kp[:, :, 0] + cols[:, None]) * s, (kp[:, :, 1] + rows[:, None]) * s], axis=2))
        scores.append(score[sel])
    if not boxes:
        return []
    all_boxes = np.concatenate(boxes) / scale
    all_kps = np.concatenate(kps) / scale
    all_scores = np.concatenate(scores)
    return [
        Face(
            box=(float(all_boxes[i, 0]), float(all_boxes[i, 1]), float(all_boxes[i, 2]), float(all_boxes[i, 3])),
            landmarks=all_kps[i].astype(np.float32),
            score=float(all_scores[i]),
        )
        for i in _nms(all_boxes, all_scores, nms_threshold)
    ]


def letterbox(image: npt.NDArray[np.uint8], size: int = YUNET_SIZE) -> tuple[FloatArray, float]:
    """The NCHW float blob of ``image`` scaled so its long side is ``size``, and the scale used.

    The blob keeps the image's shape, padded right/bottom only up to a multiple of the largest
    stride (32): a 640x480 frame is detected at 640x480, not padded to 640x640.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    bw, bh = -(-nw // STRIDES[-1]) * STRIDES[-1], -(-nh // STRIDES[-1]) * STRIDES[-1]
    resized: npt.NDArray[Any] = image
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (nw, nh), interpolation=interp)
    # Written straight into the NCHW blob, one contiguous plane at a time: padding an HWC copy and
    # converting it costs twice as much, and so does one strided copy of the transposed image.
    blob = np.zeros((1, 3, bh, bw), dtype=np.float32)
    for channel, plane in enumerate(cv2.split(resized)):
        blob[0, channel, :nh, :nw] = plane
    return blob, scale


def similarity_transform(src: FloatArray, dst: FloatArray) -> npt.NDArray[np.float64]:
    """The 2x3 least-squares similarity (Umeyama) mapping ``src`` points onto ``dst``."""
    src64, dst64 = src.astype(np.float64), dst.astype(np.float64)
    src_mean, dst_mean = src64.mean(0), dst64.mean(0)
    sc, dc = src64 - src_mean, dst64 - dst_mean
    cov = dc.T @ sc / len(src64)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = float((d * sign).sum() / sc.var(0).sum())
    out = np.zeros((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = dst_mean - scale * rot @ src_mean
    return out


def align(image: npt.NDArray[np.uint8], face: Face) -> npt.NDArray[np.uint8]:
    """The face warped onto the ArcFace 112x112 template."""
    matrix = similarity_transform(face.landmarks, ARCFACE_TEMPLATE)
    warped = cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return np.asarray(warped, dtype=np.uint8)


def assess(
    faces: Sequence[Face], aligned: npt.NDArray[np.uint8] | None, limits: QualityLimits = QualityLimits()
) -> FaceQuality:
    """Quality gates on the largest face and its aligned crop."""
    if not faces or aligned is None:
        return FaceQuality(None, 0, (issue("no_face"),))
    main = max(faces, key=lambda f: f.area)
    issues: list[QualityIssue] = []
    others = [f for f in faces if f is not main and f.area >= limits.second_face_ratio * main.area]
    if others:
        issues.append(issue("two_faces"))
    gray = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    inner = gray[24:104, 24:88]
    brightness = float(inner.mean())
    sharpness = float(cv2.Laplacian(inner, cv2.CV_64F).var())
    yaw, pitch = main.pose()
    if brightness < limits.min_brightness:
        issues.append(issue("too_dark"))
    if main.eye_distance < limits.min_eye_distance:
        issues.append(issue("face_too_small"))
    elif sharpness < limits.min_sharpness:
        issues.append(issue("blurred"))
    if abs(yaw) > limits.max_yaw or not limits.pitch_range[0] <= pitch <= limits.pitch_range[1]:
        issues.append(issue("not_frontal"))
    return FaceQuality(main, len(faces), tuple(issues), brightness, sharpness, yaw, pitch)


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
