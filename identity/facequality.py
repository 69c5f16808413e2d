"""Quality gates on a detected face: one face, lit, sharp, large enough and frontal, with bilingual guidance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from identity.facedetect import Face


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

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary: counts, measures and the face's box (no image, no template)."""
        return {
            "faces": self.faces,
            "issues": self.codes,
            "brightness": None if self.brightness is None else round(self.brightness, 1),
            "sharpness": None if self.sharpness is None else round(self.sharpness, 1),
            "yaw": None if self.yaw is None else round(self.yaw, 3),
            "pitch": None if self.pitch is None else round(self.pitch, 3),
            "box": None if self.face is None else [round(v, 1) for v in self.face.box],
        }


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
