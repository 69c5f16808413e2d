from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from identity.face import (
    MATCH_THRESHOLD,
    FaceEngine,
    TemplateCache,
    assess,
    cosine,
    letterbox,
)
from identity.images import ImageError, as_bgr
from identity.models import ModelRegistry

from .conftest import FACES, load, people, small

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@pytest.fixture(scope="module")
def photos() -> dict[tuple[str, str], np.ndarray]:
    return {(person, p.name): load(p) for person, paths in people().items() for p in paths}


@pytest.fixture(scope="module")
def embedded(engine: FaceEngine, photos: dict[tuple[str, str], np.ndarray]) -> dict[tuple[str, str], tuple]:
    return {key: engine.embed_sync(img) for key, img in photos.items()}


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


def test_bad_inputs_say_what_to_send() -> None:
    with pytest.raises(ImageError, match="JPEG"):
        as_bgr(b"not an image")
    with pytest.raises(ImageError):
        as_bgr(np.zeros((10, 10, 3), np.float32))  # type: ignore[arg-type]
    blob, scale = letterbox(np.zeros((320, 160, 3), np.uint8))
    assert blob.shape == (1, 3, 640, 320) and scale == 2.0


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
