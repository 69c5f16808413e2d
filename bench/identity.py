"""Identity benchmark: per-stage latency vs bare onnxruntime calls, and accuracy on ../shared/faces.

Run: ``COUNTER_MODELS_DIR=../shared/models python bench/identity.py [--runs 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# This file is named like the package it measures: drop bench/ from the path so "identity" is the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from identity.antispoof import AntiSpoof  # noqa: E402
from identity.face import MATCH_THRESHOLD, PUBLISHED_THRESHOLD, FaceEngine, align, cosine, letterbox  # noqa: E402
from identity.idcard import IdCardReader  # noqa: E402
from identity.liveness import LivenessChecker, new_challenge  # noqa: E402
from identity.models import ModelRegistry  # noqa: E402

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


Stats = tuple[float, float]


def _stats(samples: list[float]) -> Stats:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def timed(func: Callable[[], object], runs: int) -> Stats:
    """p50 and p95 milliseconds of ``func`` over ``runs`` calls (after one warm-up)."""
    return paired(func, None, runs)[0]


def paired(ours: Callable[[], object], bare: Callable[[], object] | None, runs: int) -> tuple[Stats, Stats | None]:
    """``ours`` and ``bare`` timed in alternation, so that both see the same moments of a noisy machine."""
    funcs = [ours] if bare is None else [ours, bare]
    samples: list[list[float]] = [[] for _ in funcs]
    for func in funcs:
        func()
    for _ in range(runs):
        for func, out in zip(funcs, samples, strict=True):
            t0 = time.perf_counter()
            func()
            out.append((time.perf_counter() - t0) * 1000)
    return _stats(samples[0]), _stats(samples[1]) if bare is not None else None


def frame(path: Path, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A phone video frame of the photo: centre-cropped to ``size`` (width, height) aspect and resized."""
    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    want = size[0] / size[1]
    if w / h > want:
        cw = round(h * want)
        image = image[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = round(w / want)
        image = image[(h - ch) // 2 : (h - ch) // 2 + ch]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args()
    registry = ModelRegistry(args.models_dir)
    engine = FaceEngine(registry)
    spoof = AntiSpoof(registry)
    # The customer's phone held upright (the page asks for 640x480: 480x640 in portrait), and the
    # real-name photo on file as the account system stores it (an encoded JPEG, full size).
    live = frame(FACES / "faceonnx/brad_pitt/brad_2.jpg")
    ref = frame(FACES / "faceonnx/brad_pitt/brad_3.jpg")
    on_file = (FACES / "faceonnx/brad_pitt/brad_3.jpg").read_bytes()
    face = max(engine.detect_sync(live), key=lambda f: f.area)
    aligned = align(live, face)
    yunet, sface = registry.session("yunet"), registry.session("sface")
    yblob, _ = letterbox(live)
    square = np.zeros((1, 3, 640, 640), np.float32)  # how frames were fed before the input axes were freed
    square[:, :, : yblob.shape[2], : yblob.shape[3]] = yblob
    sblob = cv2.dnn.blobFromImage(aligned, swapRB=True)
    crops = spoof.crops(live, face)
    fas = [registry.session("minifasnet_v2"), registry.session("minifasnet_v1se")]

    def bare_check() -> None:
        yunet.run(None, {"input": yblob})
        sface.run(None, {"data": sblob})

    def bare_verify() -> None:
        bare_check()
        bare_check()

    engine.verify_sync(live, on_file)  # the template of the photo on file is made once, then kept

    n = args.runs
    rows: list[tuple[str, Stats | None, Stats | None]] = [
        ("detect (YuNet)", *paired(lambda: engine.detect_sync(live), lambda: yunet.run(None, {"input": yblob}), n)),
        (
            "detect, bare: this frame at 640x640, padded (before) vs as it is",
            *paired(lambda: yunet.run(None, {"input": square}), lambda: yunet.run(None, {"input": yblob}), n),
        ),
        ("align", timed(lambda: align(live, face), n), None),
        (
            "embed (SFace)",
            *paired(lambda: engine.embed_aligned_sync(aligned), lambda: sface.run(None, {"data": sblob}), n),
        ),
        (
            "antispoof (2 models)",
            *paired(
                lambda: spoof.score_sync(live, face),
                lambda: [s.run(None, {"input": c}) for s, c in zip(fas, crops, strict=True)],
                n,
            ),
        ),
        (
            "face check: live frame vs photo on file (1 detect + 1 embed)",
            *paired(lambda: engine.verify_sync(live, on_file), bare_check, n),
        ),
        (
            "verify two fresh frames (2 detect + 2 embed)",
            *paired(lambda: engine.verify_sync(live, ref), bare_verify, n),
        ),
    ]
    checker = LivenessChecker(engine, spoof)
    clip = [(time.time() + i / 5, live) for i in range(30)]  # 6 s of video at the witness's 5 fps

    def liveness() -> None:
        challenge = new_challenge(1)
        asyncio.run(checker.check(challenge, [(challenge.issued_at + t - clip[0][0], f) for t, f in clip],
                                  reference=on_file))

    rows.append(("liveness check: 30 frames, 6 passive, 5 identity samples", timed(liveness, max(3, n // 10)), None))
    reader = IdCardReader()
    card = cv2.imread(str(FACES / "ocr/ocr_test_cn.png"))
    rows.append(("OCR read-id", timed(lambda: reader.read_sync(card), max(3, args.runs // 10)), None))

    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {platform.machine()}, threads={registry.threads}, "
        f"live frame {live.shape[1]}x{live.shape[0]}, detector input {yblob.shape[3]}x{yblob.shape[2]}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("| stage | ours p50 ms | ours p95 ms | bare ORT p50 ms | overhead |")
    print("|---|---|---|---|---|")
    for name, ours, bare in rows:
        cells = [f"{ours[0]:.1f}", f"{ours[1]:.1f}"] if ours else ["-", "-"]
        cells.append(f"{bare[0]:.1f}" if bare else "-")
        cells.append(f"{ours[0] / bare[0]:.2f}x" if ours and bare else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")

    embeddings = {}
    for person in sorted(p for g in ("face_recognition", "faceonnx") for p in (FACES / g).iterdir() if p.is_dir()):
        for photo in sorted(person.glob("*.*")):
            _, vec = engine.embed_sync(cv2.imread(str(photo)))
            embeddings[(person.name, photo.name)] = vec
    genuine, impostor = [], []
    for a, b in itertools.combinations(embeddings, 2):
        (genuine if a[0] == b[0] else impostor).append(cosine(embeddings[a], embeddings[b]))
    g, i = np.array(genuine), np.array(impostor)
    print(f"\n| pairs | n | min | p5 | median | p95 | max | wrong side at {MATCH_THRESHOLD:.3f} |")
    print("|---|---|---|---|---|---|---|---|")
    for label, arr, wrong in (
        ("genuine", g, int((g < MATCH_THRESHOLD).sum())),
        ("impostor", i, int((i >= MATCH_THRESHOLD).sum())),
    ):
        q = np.percentile(arr, [0, 5, 50, 95, 100])
        print(f"| {label} | {arr.size} | " + " | ".join(f"{v:.3f}" for v in q) + f" | {wrong} |")
    print(
        f"\nFRR {np.mean(g < MATCH_THRESHOLD):.3f}, FAR {np.mean(i >= MATCH_THRESHOLD):.4f} at {MATCH_THRESHOLD:.3f}; "
        f"at the published {PUBLISHED_THRESHOLD}: FRR {np.mean(g < PUBLISHED_THRESHOLD):.3f}, "
        f"FAR {np.mean(i >= PUBLISHED_THRESHOLD):.4f}; margins: genuine min - thr {g.min() - MATCH_THRESHOLD:+.3f}, "
        f"thr - impostor max {MATCH_THRESHOLD - i.max():+.3f}"
    )
    engine.close()


if __name__ == "__main__":
    main()
