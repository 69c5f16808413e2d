"""Face detection and alignment: YuNet's raw outputs decoded into faces, and the ArcFace 112x112 warp.

The detector runs on the image's own shape (padded to a multiple of the largest stride), and its
decoding matches OpenCV's ``FaceDetectorYN``; the alignment matches ``FaceRecognizerSF.alignCrop``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

YUNET_SIZE = 640
STRIDES = (8, 16, 32)
#: ArcFace 112x112 template: left eye, right eye, nose tip, left and right mouth corners (image left/right).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


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
