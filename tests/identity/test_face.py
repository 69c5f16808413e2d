from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from identity.face import (
    MATCH_THRESHOLD,
    Face,
    FaceEngine,
    QualityLimits,
    TemplateCache,
    assess,
    cosine,
    decode_yunet,
    letterbox,
)
from identity.images import ImageError, as_bgr
from identity.models import ModelRegistry

from .conftest import FACES, load, people

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Iterator[FaceEngine]:
    eng = FaceEngine(ModelRegistry(models_dir))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def photos() -> dict[tuple[str, str], np.ndarray]:
    return {(person, p.name): load(p) for person, paths in people().items() for p in paths}


@pytest.fixture(scope="module")
def embedded(engine: FaceEngine, photos: dict[tuple[str, str], np.ndarray]) -> dict[tuple[str, str], tuple]:
    return {key: engine.embed_sync(img) for key, img in photos.items()}


def small(image: np.ndarray, side: int = 640) -> np.ndarray:
    scale = side / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


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
    from identity.face import align

    rec = cv2.FaceRecognizerSF.create(str(models_dir / "face_recognition_sface_2021dec.onnx"), "")
    image = load(FACES / "face_recognition/obama/obama.jpg")
    face = max(engine.detect_sync(image), key=lambda f: f.area)
    row = np.array([*face.box, *face.landmarks.reshape(-1), face.score], dtype=np.float32)
    theirs = rec.alignCrop(image, row)
    ours = align(image, face)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 1.0
    theirs_vec = rec.feature(theirs).ravel()
    assert cosine(engine.embed_aligned_sync(ours), theirs_vec) > 0.99


def test_every_pair_on_the_right_side(embedded: dict[tuple[str, str], tuple]) -> None:
    genuine, impostor = [], []
    for a, b in itertools.combinations(embedded, 2):
        score = cosine(embedded[a][1], embedded[b][1])
        (genuine if a[0] == b[0] else impostor).append((score, a, b))
    assert len(genuine) > 20 and len(impostor) > 200
    assert min(genuine)[0] >= MATCH_THRESHOLD, min(genuine)
    assert max(impostor)[0] < MATCH_THRESHOLD, max(impostor)


def test_verify_decisions(engine: FaceEngine, photos: dict[tuple[str, str], np.ndarray], embedded: dict) -> None:
    clean = [k for k, (q, _) in embedded.items() if q.ok]
    assert len(clean) >= 20
    same = [(a, b) for a, b in itertools.permutations(clean, 2) if a[0] == b[0]]
    for a, b in same[::3]:
        result = engine.verify_sync(photos[a], photos[b])
        assert result.decision == "match", (a, b, result.score)
    others = [(a, b) for a, b in itertools.permutations(clean, 2) if a[0] != b[0]]
    for a, b in others[::40]:
        result = engine.verify_sync(photos[a], embedded[b][1])
        assert result.decision == "no_match", (a, b, result.score)


async def test_async_verify_accepts_encoded_bytes(engine: FaceEngine) -> None:
    a = (FACES / "face_recognition/obama/obama.jpg").read_bytes()
    b = (FACES / "face_recognition/obama/obama2.jpg").read_bytes()
    result = await engine.verify(a, b)
    assert result.decision == "match" and result.score > MATCH_THRESHOLD
    body = result.to_json()
    assert body["decision"] == "match" and "embedding" not in str(body)


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


def test_bad_inputs_say_what_to_send() -> None:
    with pytest.raises(ImageError, match="JPEG"):
        as_bgr(b"not an image")
    with pytest.raises(ImageError):
        as_bgr(np.zeros((10, 10, 3), np.float32))  # type: ignore[arg-type]
    blob, scale = letterbox(np.zeros((320, 160, 3), np.uint8))
    assert blob.shape == (1, 3, 640, 320) and scale == 2.0


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


def test_photo_on_file_is_embedded_once(models_dir: Path) -> None:
    eng = FaceEngine(ModelRegistry(models_dir))
    try:
        on_file = (FACES / "face_recognition/obama/obama.jpg").read_bytes()
        live = small(load(FACES / "face_recognition/obama/obama2.jpg"))
        first = eng.verify_sync(live, on_file)
        assert (eng.templates.hits, eng.templates.misses, len(eng.templates)) == (0, 1, 1)
        again = eng.verify_sync(live, on_file)
        assert (eng.templates.hits, len(eng.templates)) == (1, 1)
        assert again.score == pytest.approx(first.score, abs=1e-6) and again.decision == "match"
        assert again.reference_quality == first.reference_quality
        eng.verify_sync(live, bytearray(on_file))  # the same content in another buffer: the same template
        assert eng.templates.hits == 2
    finally:
        eng.close()


def test_live_frames_are_never_kept(engine: FaceEngine) -> None:
    before = len(engine.templates)
    frame = small(load(FACES / "face_recognition/obama/obama2.jpg"))
    engine.embed_sync(frame)
    engine.embed_sync(frame)
    assert len(engine.templates) == before and TemplateCache.key(frame) is None


def test_templates_are_bounded_and_expire() -> None:
    quality = assess([], None)
    cache = TemplateCache(size=2)
    for name in (b"a", b"b", b"c"):
        cache.put(TemplateCache.key(name) or "", (quality, None))
    assert len(cache) == 2 and cache.get(TemplateCache.key(b"a") or "") is None
    assert cache.get(TemplateCache.key(b"c") or "") == (quality, None)
    stale = TemplateCache(ttl_s=0.0)
    stale.put("k", (quality, None))
    assert stale.get("k") is None and len(stale) == 0
    cache.clear()
    assert len(cache) == 0
