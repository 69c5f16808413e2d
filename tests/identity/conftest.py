"""Fixtures for the identity tests: the shared models and photos, engines created once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from identity.face import FaceEngine
from identity.models import ModelRegistry

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MODELS = SHARED / "models"
FACES = SHARED / "faces"


def people() -> dict[str, list[Path]]:
    """Each person's photos in the shared folder."""
    out: dict[str, list[Path]] = {}
    for group in ("face_recognition", "faceonnx"):
        for person in sorted((FACES / group).iterdir()):
            if person.is_dir():
                out[person.name] = sorted(p for p in person.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return out


def load(path: Path) -> np.ndarray:
    """A photo as BGR uint8."""
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


@pytest.fixture(scope="session")
def models_dir() -> Path:
    if not (MODELS / "face_detection_yunet_2023mar.onnx").is_file():
        pytest.skip("shared models not present")
    return MODELS


def small(image: np.ndarray, side: int = 640) -> np.ndarray:
    """``image`` scaled so its long side is ``side``."""
    scale = side / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Iterator[FaceEngine]:
    """A face engine on the shared models, one per test module."""
    eng = FaceEngine(ModelRegistry(models_dir))
    yield eng
    eng.close()
