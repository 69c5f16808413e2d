from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from identity.antispoof import AntiSpoof, crop_box
from identity.face import FaceEngine
from identity.liveness import (
    ACTIONS,
    Action,
    Challenge,
    LivenessChecker,
    Observation,
    UnusableReference,
    evaluate,
    identity_samples,
    new_challenge,
    switched,
)
from identity.models import ModelRegistry

from . import synth
from .conftest import FACES, load


@pytest.fixture(scope="module")
def registry(models_dir: Path) -> ModelRegistry:
    return ModelRegistry(models_dir)


@pytest.fixture(scope="module")
def checker(registry: ModelRegistry) -> Iterator[LivenessChecker]:
    engine = FaceEngine(registry)
    yield LivenessChecker(engine, AntiSpoof(registry))
    engine.close()


def posed(checker: LivenessChecker, photo: str) -> dict[str, np.ndarray]:
    """Synthetic frames of the person in ``photo`` (480 px) in each pose."""
    image = load(FACES / photo)
    scale = 480 / max(image.shape[:2])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    face = max(checker.engine.detect_sync(image), key=lambda f: f.area)
    return synth.poses(image, face)


@pytest.fixture(scope="module")
def poses(checker: LivenessChecker) -> dict[str, np.ndarray]:
    return posed(checker, "faceonnx/brad_pitt/brad_2.jpg")


@pytest.fixture(scope="module")
def observed(checker: LivenessChecker, poses: dict[str, np.ndarray]) -> dict[str, Observation]:
    return {name: checker.observe_sync(frame, 0.0)[0] for name, frame in poses.items()}


def performance(moves: list[str], start: float, step: float = 0.2) -> list[tuple[float, str]]:
    """Timestamped pose names: neutral, then each move held 3 frames and back to neutral 3 frames."""
    names = ["neutral"] * 4
    for move in moves:
        names += [move] * 3 + ["neutral"] * 3
    return [(start + 0.1 + i * step, name) for i, name in enumerate(names)]


def observations(observed: dict[str, Observation], moves: list[str], start: float) -> list[Observation]:
    return [
        Observation(t, observed[n].faces, observed[n].yaw, observed[n].pitch, observed[n].openness)
        for t, n in performance(moves, start)
    ]


def challenge(*seq: Action) -> Challenge:
    return Challenge("c1", tuple(seq), 1000.0, 1030.0)


def test_synthetic_frames_move_the_right_measure(observed: dict[str, Observation]) -> None:
    n = observed["neutral"]
    assert all(o.faces == 1 for o in observed.values())
    assert observed["turn_left"].yaw - n.yaw > 0.18 and n.yaw - observed["turn_right"].yaw > 0.18
    assert observed["nod"].pitch - n.pitch > 0.1 and abs(observed["nod"].yaw - n.yaw) < 0.09
    assert observed["blink"].openness < 0.6 * n.openness
    assert abs(observed["blink"].yaw - n.yaw) < 0.09


def test_new_challenges_are_random_and_bounded() -> None:
    seen = set()
    for _ in range(200):
        c = new_challenge(3, now=50.0)
        assert len(c.sequence) == 3 and all(a != b for a, b in zip(c.sequence, c.sequence[1:], strict=False))
        assert c.issued_at == 50.0 and c.deadline > 50.0
        seen.add(c.sequence)
    assert len(seen) > 20 and {a for s in seen for a in s} == set(ACTIONS)
    assert [i["zh"] for i in c.to_json()["instructions"]]  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        new_challenge(0)


@pytest.mark.parametrize(
    "seq", [("turn_left", "blink", "nod"), ("turn_right", "nod", "blink"), ("nod", "turn_left", "turn_right")]
)
def test_performed_challenge_passes(observed: dict[str, Observation], seq: tuple[Action, ...]) -> None:
    result = evaluate(challenge(*seq), observations(observed, list(seq), 1000.0))
    assert result.passed and result.completed == seq and not result.reasons


def test_still_photo_fails_even_with_a_perfect_passive_score(observed: dict[str, Observation]) -> None:
    result = evaluate(challenge("blink", "nod"), observations(observed, [], 1000.0) * 3, passive_score=1.0)
    assert not result.passed


def test_wrong_order_fails(observed: dict[str, Observation]) -> None:
    result = evaluate(
        challenge("turn_left", "blink", "nod"), observations(observed, ["blink", "nod", "turn_left"], 1000.0)
    )
    assert not result.passed and result.reasons == ("incomplete",)


def test_opposite_turn_is_a_wrong_action(observed: dict[str, Observation]) -> None:
    result = evaluate(
        challenge("turn_left", "blink"), observations(observed, ["turn_right", "turn_left", "blink"], 1000.0)
    )
    assert not result.passed and result.reasons == ("wrong_action",)


def test_mirrored_frames_swap_left_and_right(observed: dict[str, Observation]) -> None:
    obs = observations(observed, ["turn_right", "blink"], 1000.0)
    assert evaluate(challenge("turn_left", "blink"), obs, mirrored=True).passed
    assert not evaluate(challenge("turn_left", "blink"), obs).passed


def test_too_late_expires(observed: dict[str, Observation]) -> None:
    obs = observations(observed, ["turn_left", "blink"], 1000.0)
    late = Challenge("c2", ("turn_left", "blink"), 1000.0, obs[8].t)
    result = evaluate(late, obs)
    assert not result.passed and result.reasons == ("expired",)


def test_second_face_fails(observed: dict[str, Observation]) -> None:
    obs = observations(observed, ["blink", "nod"], 1000.0)
    obs[5] = Observation(obs[5].t, 2, obs[5].yaw, obs[5].pitch, obs[5].openness)
    assert evaluate(challenge("blink", "nod"), obs).reasons == ("two_faces",)


async def test_check_on_real_frames(checker: LivenessChecker, poses: dict[str, np.ndarray]) -> None:
    c = new_challenge(2)
    frames = [(t, poses[name]) for t, name in performance(list(c.sequence), c.issued_at)]
    result = await checker.check(c, frames)
    assert result.passed, result
    assert result.passive_score is not None and result.passive_score > 0.5
    body = result.to_json()
    assert body["passed"] is True and body["completed"] == list(c.sequence)


def test_antispoof_orders_real_above_spoofs(checker: LivenessChecker) -> None:
    assert checker.antispoof is not None
    scores = {}
    for name in ("image_T1", "image_F1", "image_F2"):
        image = load(FACES / "antispoof" / f"{name}.jpg")
        face = max(checker.engine.detect_sync(image), key=lambda f: f.area)
        scores[name] = checker.antispoof.score_sync(image, face)
    assert scores["image_T1"] > 0.9
    assert scores["image_T1"] > scores["image_F1"] > scores["image_F2"]
    assert scores["image_F1"] < 0.5


def test_crop_box_stays_inside_the_image() -> None:
    assert crop_box((0, 0, 100, 100), 200, 150, 4.0) == (0, 0, 149, 149)
    x0, y0, x1, y1 = crop_box((150, 100, 40, 40), 200, 150, 2.7)
    assert 0 <= x0 < x1 <= 199 and 0 <= y0 < y1 <= 149 and x1 - x0 == pytest.approx(108, abs=1)


def faced(t: float, x: float, w: float = 100.0) -> Observation:
    return Observation(t, 1, 0.0, 0.5, 1.0, (x, 100.0, w, w * 1.2))


def test_a_face_that_jumps_or_changes_size_is_another_face() -> None:
    steady = [faced(i, 200 + 15 * i) for i in range(10)]
    assert not switched(steady)
    jumped = [*steady[:5], *(faced(i, 450 + 15 * i) for i in range(5, 10))]
    assert switched(jumped)
    resized = [*steady[:5], *(faced(i, 200, 220) for i in range(5, 10))]
    assert switched(resized)
    lost_then_elsewhere = [*steady[:5], Observation(5.0, 0), faced(6.0, 520)]
    assert switched([o for o in lost_then_elsewhere if o.faces == 1])


def test_switched_face_or_another_person_fails_a_performed_challenge(observed: dict[str, Observation]) -> None:
    seq: tuple[Action, ...] = ("turn_left", "blink")
    obs = [replace(o, box=(200.0, 100.0, 100.0, 120.0)) for o in observations(observed, list(seq), 1000.0)]
    assert evaluate(challenge(*seq), obs, identity_scores=[0.7, 0.65, 0.72]).passed
    moved = [*obs[:8], *(replace(o, box=(420.0, 100.0, 100.0, 120.0)) for o in obs[8:])]
    assert evaluate(challenge(*seq), moved).reasons == ("face_switched",)
    other = evaluate(challenge(*seq), obs, identity_scores=[0.7, 0.12, 0.72])
    assert not other.passed and other.reasons == ("not_the_holder",)
    assert other.identity_json() == {
        "compared": 3, "reference_score": 0.7, "min_score": 0.12, "threshold": other.identity_threshold
    }
    assert other.to_json()["reasons"][0]["zh"]  # type: ignore[index]


def test_identity_samples_take_the_most_frontal_frame_of_each_stretch() -> None:
    poses = [(0.0, 0.5), (0.05, 0.6), (0.1, 0.4), (0.2, 0.5), (0.4, 0.5), (0.5, 0.5), (0.45, 0.5), (0.35, 0.5),
             (0.05, 0.5), (0.1, 0.5)]  # baseline yaw 0.05, pitch 0.5 (medians of the first three)
    obs = [Observation(float(i), 1, yaw, pitch, 1.0) for i, (yaw, pitch) in enumerate(poses)]
    # Stretches 0-3, 4-6, 7-9: the middle one is turned past 0.3 throughout and not compared; the
    # anchor (index 8, exactly the baseline pose) comes first, then the others in time order.
    assert identity_samples(obs, 3) == [8, 0]
    assert identity_samples([Observation(0.0, 0)], 3) == []


@pytest.fixture(scope="module")
def other_poses(checker: LivenessChecker) -> dict[str, np.ndarray]:
    return posed(checker, "faceonnx/nicole_kidman/nicole_1.jpg")


async def test_real_performance_is_matched_with_the_photo_on_file(
    checker: LivenessChecker, poses: dict[str, np.ndarray], other_poses: dict[str, np.ndarray]
) -> None:
    holder = (FACES / "faceonnx/brad_pitt/brad_3.jpg").read_bytes()
    c = new_challenge(2)
    frames = [(t, poses[name]) for t, name in performance(list(c.sequence), c.issued_at)]
    result = await checker.check(c, frames, reference=holder)
    assert result.passed, result
    identity = result.identity_json()
    assert identity is not None and identity["compared"] >= 3
    assert identity["min_score"] >= checker.engine.threshold  # type: ignore[operator]
    poses_shown = [name for _, name in performance(list(c.sequence), c.issued_at)]
    assert result.anchor_frame is not None and poses_shown[result.anchor_frame] == "neutral"

    someone_else = (FACES / "faceonnx/nicole_kidman/nicole_2.jpg").read_bytes()
    result = await checker.check(c, frames, reference=someone_else)
    assert not result.passed and "not_the_holder" in result.reasons

    # The holder starts, then another person takes over for the second movement.
    timeline = enumerate(performance(list(c.sequence), c.issued_at))
    swapped = [(t, poses[n] if i < 10 else other_poses[n]) for i, (t, n) in timeline]
    result = await checker.check(c, swapped, reference=holder)
    assert not result.passed and "not_the_holder" in result.reasons, result


async def test_a_reference_without_a_face_is_refused_clearly(checker: LivenessChecker) -> None:
    blank = cv2.imencode(".png", np.full((200, 200, 3), 180, np.uint8))[1].tobytes()
    with pytest.raises(UnusableReference, match="real-name photo"):
        await checker.check(new_challenge(1), [], reference=blank)
