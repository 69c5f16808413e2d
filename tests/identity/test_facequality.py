"""The face quality gates: each issue on a real portrait made dark, blurred, small, cropped, doubled or turned."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from identity.face import FaceEngine
from identity.facedetect import Face
from identity.facequality import QualityLimits, assess

from .conftest import FACES, load, small

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return small(load(FACES / "faceonnx/brad_pitt/brad_2.jpg"), 480)


def codes(engine: FaceEngine, image: np.ndarray) -> list[str]:
    quality, _ = engine.analyse_sync(image)
    return quality.codes


def test_clean_portrait_passes(engine: FaceEngine, portrait: np.ndarray) -> None:
    assert codes(engine, portrait) == []


def test_blurred(engine: FaceEngine, portrait: np.ndarray) -> None:
    assert codes(engine, cv2.GaussianBlur(portrait, (0, 0), 4)) == ["blurred"]


def test_too_dark(engine: FaceEngine, portrait: np.ndarray) -> None:
    assert "too_dark" in codes(engine, (portrait * 0.3).astype(np.uint8))


def test_face_too_small(engine: FaceEngine, portrait: np.ndarray) -> None:
    canvas = np.full((480, 480, 3), 200, np.uint8)
    canvas[200:280, 200:280] = cv2.resize(portrait, (80, 80), interpolation=cv2.INTER_AREA)
    assert codes(engine, canvas) == ["face_too_small"]


def test_no_face_when_cropped_away(engine: FaceEngine, portrait: np.ndarray) -> None:
    assert codes(engine, portrait[-120:, :]) == ["no_face"]


def test_two_faces_pasted(engine: FaceEngine, portrait: np.ndarray) -> None:
    other = small(load(FACES / "faceonnx/nicole_kidman/nicole_1.jpg"), 480)
    side_by_side = np.concatenate([portrait, cv2.resize(other, (other.shape[1] * 480 // other.shape[0], 480))], 1)
    assert codes(engine, side_by_side) == ["two_faces"]
    result = engine.verify_sync(side_by_side, portrait)
    assert result.decision == "retry" and [n.code for n in result.notes] == ["two_faces"]


def test_not_frontal(engine: FaceEngine, portrait: np.ndarray) -> None:
    face = max(engine.detect_sync(portrait), key=lambda f: f.area)
    turned = face.landmarks.copy()
    turned[2, 0] += 0.5 * face.eye_distance
    yawed = Face(face.box, turned, face.score)
    quality = assess([yawed], np.full((112, 112, 3), 128, np.uint8), QualityLimits(min_sharpness=0))
    assert quality.codes == ["not_frontal"] and quality.yaw is not None and quality.yaw > 0.35


def test_quality_messages_are_bilingual(engine: FaceEngine) -> None:
    quality = assess([], None)
    assert quality.issues[0].zh and quality.issues[0].en and quality.codes == ["no_face"]
