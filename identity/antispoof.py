"""Passive anti-spoofing: MiniFASNetV2 and MiniFASNetV1SE, softmax averaged (class 1 = real).

The score is noisy on ordinary photos; it is an extra signal next to the active liveness challenge,
never a decision on its own.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from identity.facedetect import Face
from identity.images import Image, as_bgr
from identity.models import ModelRegistry

#: (model, crop scale about the face box) as the models were trained.
MODELS: tuple[tuple[str, float], ...] = (("minifasnet_v2", 2.7), ("minifasnet_v1se", 4.0))
INPUT = 80


def crop_box(
    box: tuple[float, float, float, float], width: int, height: int, scale: float
) -> tuple[int, int, int, int]:
    """The face box scaled about its centre, shrunk to fit and shifted inside the image (x0, y0, x1, y1).

    Same rule as Silent-Face-Anti-Spoofing's ``CropImage._get_new_box``.
    """
    x, y, w, h = box
    scale = min((height - 1) / max(h, 1.0), (width - 1) / max(w, 1.0), scale)
    nw, nh = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = cx - nw / 2, cy - nh / 2
    x1, y1 = cx + nw / 2, cy + nh / 2
    if x0 < 0:
        x1, x0 = x1 - x0, 0
    if y0 < 0:
        y1, y0 = y1 - y0, 0
    if x1 > width - 1:
        x0, x1 = x0 - (x1 - width + 1), width - 1
    if y1 > height - 1:
        y0, y1 = y0 - (y1 - height + 1), height - 1
    return int(x0), int(y0), int(x1), int(y1)


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


class AntiSpoof:
    """Scores how likely a face is a live person rather than a print or a screen (0..1)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._sessions = [(registry.session(name), scale) for name, scale in MODELS]

    def crops(self, image: Image, face: Face) -> list[npt.NDArray[np.float32]]:
        """The 80x80 NCHW blob fed to each model."""
        bgr = as_bgr(image)
        h, w = bgr.shape[:2]
        out = []
        for _, scale in self._sessions:
            x0, y0, x1, y1 = crop_box(face.box, w, h, scale)
            patch = cv2.resize(bgr[y0 : y1 + 1, x0 : x1 + 1], (INPUT, INPUT))
            out.append(np.ascontiguousarray(patch.transpose(2, 0, 1)[None], dtype=np.float32))
        return out

    def score_sync(self, image: Image, face: Face) -> float:
        """Mean probability of "real" over both models."""
        probs = []
        for (session, _), blob in zip(self._sessions, self.crops(image, face), strict=True):
            logits = session.run(None, {"input": blob})[0]
            probs.append(float(_softmax(np.asarray(logits, dtype=np.float32))[0, 1]))
        return float(np.mean(probs))
