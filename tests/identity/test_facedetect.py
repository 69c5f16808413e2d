"""Face detection and alignment against OpenCV's own YuNet and SFace implementations."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from identity.face import FaceEngine, cosine
from identity.facedetect import align, decode_yunet, letterbox

from .conftest import FACES, load, small

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def test_decode_matches_opencv_detector(engine: FaceEngine, models_dir: Path) -> None:
    det = cv2.FaceDetectorYN.create(str(models_dir / "face_detection_yunet_2023mar.onnx"), "", (640, 640), 0.6, 0.3)
    for path in [FACES / "faceonnx/brad_pitt/brad_2.jpg", FACES / "face_recognition/biden/biden2.jpg"]:
        image = small(load(path))
        det.setInputSize((image.shape[1], image.shape[0]))
        _, theirs = det.detect(image)
        ours = engine.detect_sync(image)
        assert len(ours) == len(theirs)
        for row in theirs:
            mine = min(ours, key=lambda f: abs(f.box[0] - row[0]) + abs(f.box[1] - row[1]))
            assert np.allclose(mine.box, row[:4], atol=0.5)
            assert np.allclose(mine.landmarks.reshape(-1), row[4:14], atol=0.5)
            assert mine.score == pytest.approx(float(row[14]), abs=1e-3)


def test_alignment_matches_opencv(engine: FaceEngine, models_dir: Path) -> None:
    rec = cv2.FaceRecognizerSF.create(str(models_dir / "face_recognition_sface_2021dec.onnx"), "")
    image = load(FACES / "face_recognition/obama/obama.jpg")
    face = max(engine.detect_sync(image), key=lambda f: f.area)
    row = np.array([*face.box, *face.landmarks.reshape(-1), face.score], dtype=np.float32)
    theirs = rec.alignCrop(image, row)
    ours = align(image, face)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 1.0
    theirs_vec = rec.feature(theirs).ravel()
    assert cosine(engine.embed_aligned_sync(ours), theirs_vec) > 0.99


def test_frames_are_detected_at_their_own_shape(engine: FaceEngine) -> None:
    """A 480x640 frame goes through the detector as 480x640; its faces are those found when the
    same frame is padded square, as the model file's declared 640x640 input would need."""
    image = small(load(FACES / "faceonnx/brad_pitt/brad_2.jpg"))[:640, :480]
    blob, scale = letterbox(image)
    assert blob.shape == (1, 3, 640, 480) and scale == 1.0
    square = np.zeros((1, 3, 640, 640), np.float32)
    square[:, :, :, :480] = blob
    yunet = engine.registry.session("yunet")
    names = [o.name for o in yunet.get_outputs()]
    padded = decode_yunet(dict(zip(names, yunet.run(names, {"input": square}), strict=True)), scale)
    ours = engine.detect_sync(image)
    assert len(ours) == len(padded) == 1
    assert np.allclose(ours[0].landmarks, padded[0].landmarks, atol=1.0)
    assert ours[0].score == pytest.approx(padded[0].score, abs=0.02)
    odd = cv2.resize(image, (333, 500), interpolation=cv2.INTER_AREA)  # pads to 448x640 only
    assert letterbox(odd)[0].shape == (1, 3, 640, 448)
    assert len(engine.detect_sync(odd)) == 1
