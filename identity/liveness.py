"""Active liveness: a random challenge (turn left/right, blink, nod) checked on live-video frames.

Each frame gives an :class:`Observation`: head yaw and pitch from YuNet's 5 landmarks and an eye
openness measure.  YuNet gives only eye centres, so openness is the vertical edge energy of the two
eye patches of the aligned 112x112 face, relative to their brightness: an open eye (lid line, iris,
sclera) has strong horizontal edges, a closed lid is smooth skin.  Each action must go out from the
customer's own neutral baseline (median of the first frames) and come back, in the asked order,
before the deadline.  The passive anti-spoofing score is reported as an extra signal only.

Frames are the raw camera frames as sent over WebRTC (not the mirrored self-view): when the customer
turns to their left, their nose moves towards the image's right.  Pass ``mirrored=True`` otherwise.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from identity.antispoof import AntiSpoof
from identity.face import FaceEngine, align
from identity.images import Image, as_bgr

Action = Literal["turn_left", "turn_right", "blink", "nod"]
ACTIONS: tuple[Action, ...] = ("turn_left", "turn_right", "blink", "nod")

INSTRUCTIONS: dict[str, tuple[str, str]] = {
    "turn_left": ("Slowly turn your head to your left, then back.", "请慢慢向左转头，再转回来。"),
    "turn_right": ("Slowly turn your head to your right, then back.", "请慢慢向右转头，再转回来。"),
    "blink": ("Blink your eyes.", "请眨眨眼。"),
    "nod": ("Nod your head once.", "请点一下头。"),
}

REASONS: dict[str, tuple[str, str]] = {
    "expired": ("Time ran out: start a new check.", "超时：请重新开始检测。"),
    "incomplete": ("Not every action was seen: follow the prompts again.", "未完成全部动作：请按提示重做。"),
    "wrong_action": ("A different movement was made: follow the prompt.", "动作与提示不符：请按提示操作。"),
    "face_lost": ("The face left the picture: stay in view.", "人脸离开画面：请保持在画面中。"),
    "two_faces": (
        "More than one face was seen: only the customer should be in view.",
        "出现多张人脸：请只让本人出现。",
    ),
    "too_few_frames": ("Too few video frames: check the camera.", "视频帧过少：请检查摄像头。"),
}

#: (eye centre x, y) on the ArcFace template and the half-size of the eye patch.
EYE_CENTRES = ((38, 52), (74, 52))
EYE_HALF = (10, 6)


@dataclass(frozen=True)
class Challenge:
    """What the customer is asked to do, and until when (``time.time()`` seconds)."""

    id: str
    sequence: tuple[Action, ...]
    issued_at: float
    deadline: float

    def to_json(self) -> dict[str, object]:
        """What the console and the customer's page show."""
        return {
            "id": self.id,
            "sequence": list(self.sequence),
            "instructions": [{"action": a, "en": INSTRUCTIONS[a][0], "zh": INSTRUCTIONS[a][1]} for a in self.sequence],
            "issued_at": self.issued_at,
            "deadline": self.deadline,
        }


def new_challenge(length: int = 3, seconds_per_action: float = 6.0, now: float | None = None) -> Challenge:
    """A random sequence of ``length`` actions, no action twice in a row, with a deadline."""
    if not 1 <= length <= 6:
        raise ValueError("a challenge has 1 to 6 actions")
    rng = secrets.SystemRandom()
    seq: list[Action] = []
    while len(seq) < length:
        action = rng.choice(ACTIONS)
        if not seq or seq[-1] != action:
            seq.append(action)
    issued = time.time() if now is None else now
    return Challenge(secrets.token_urlsafe(12), tuple(seq), issued, issued + 4.0 + seconds_per_action * length)


@dataclass(frozen=True)
class Observation:
    """What one frame shows (no image, no template)."""

    t: float
    faces: int
    yaw: float = 0.0
    pitch: float = 0.0
    openness: float = 0.0


def eye_openness(aligned: npt.NDArray[np.uint8]) -> float:
    """Vertical edge energy of both eye patches over their brightness (higher: more open)."""
    gray = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = []
    for cx, cy in EYE_CENTRES:
        patch = gray[cy - EYE_HALF[1] : cy + EYE_HALF[1], cx - EYE_HALF[0] : cx + EYE_HALF[0]]
        grad = cv2.Sobel(patch, cv2.CV_32F, 0, 1, ksize=3)
        energy.append(float(np.abs(grad).mean()) / (float(patch.mean()) + 10.0))
    return float(np.mean(energy))


@dataclass(frozen=True)
class LivenessLimits:
    """Movement thresholds, relative to the customer's neutral baseline."""

    yaw: float = 0.18
    pitch: float = 0.10
    closed: float = 0.6
    reopened: float = 0.8
    baseline_frames: int = 3
    min_face_fraction: float = 0.7


@dataclass(frozen=True)
class LivenessResult:
    """Outcome of a challenge: ``passed`` only when every action was seen in order in time."""

    passed: bool
    challenge_id: str
    completed: tuple[Action, ...]
    reasons: tuple[str, ...]
    frames: int
    passive_score: float | None = None
    details: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "challenge_id": self.challenge_id,
            "completed": list(self.completed),
            "reasons": [{"code": r, "en": REASONS[r][0], "zh": REASONS[r][1]} for r in self.reasons],
            "frames": self.frames,
            "passive_score": None if self.passive_score is None else round(self.passive_score, 4),
        }


def _excursion(obs: Observation, base: Observation, action: Action, limits: LivenessLimits, sign: float) -> bool:
    if action == "turn_left":
        return sign * (obs.yaw - base.yaw) >= limits.yaw
    if action == "turn_right":
        return sign * (obs.yaw - base.yaw) <= -limits.yaw
    if action == "nod":
        return obs.pitch - base.pitch >= limits.pitch
    return obs.openness <= limits.closed * base.openness


def _neutral(obs: Observation, base: Observation, action: Action, limits: LivenessLimits) -> bool:
    if action in ("turn_left", "turn_right"):
        return abs(obs.yaw - base.yaw) < limits.yaw / 2
    if action == "nod":
        return obs.pitch - base.pitch < limits.pitch / 2
    return obs.openness >= limits.reopened * base.openness


def evaluate(
    challenge: Challenge,
    observations: Sequence[Observation],
    limits: LivenessLimits = LivenessLimits(),
    *,
    mirrored: bool = False,
    passive_score: float | None = None,
) -> LivenessResult:
    """Whether ``observations`` (in time order) perform ``challenge.sequence`` before the deadline."""
    sign = -1.0 if mirrored else 1.0
    in_time = [o for o in observations if challenge.issued_at <= o.t <= challenge.deadline]
    late = any(o.t > challenge.deadline for o in observations)
    reasons: list[str] = []

    def result(completed: list[Action]) -> LivenessResult:
        if len(completed) < len(challenge.sequence) and not reasons:
            reasons.append("expired" if late else "incomplete")
        return LivenessResult(
            not reasons, challenge.id, tuple(completed), tuple(dict.fromkeys(reasons)), len(observations), passive_score
        )

    if any(o.faces > 1 for o in in_time):
        reasons.append("two_faces")
    seen = [o for o in in_time if o.faces == 1]
    if len(seen) < limits.baseline_frames + 2 * len(challenge.sequence):
        reasons.append("too_few_frames")
        return result([])
    if len(seen) < limits.min_face_fraction * len(in_time):
        reasons.append("face_lost")
    head = seen[: limits.baseline_frames]
    base = Observation(
        head[0].t,
        1,
        float(np.median([o.yaw for o in head])),
        float(np.median([o.pitch for o in head])),
        float(np.median([o.openness for o in head])),
    )
    completed: list[Action] = []
    out = False
    for obs in seen[limits.baseline_frames :]:
        if len(completed) == len(challenge.sequence):
            break
        action = challenge.sequence[len(completed)]
        if not out:
            opposite: Action | None = {"turn_left": "turn_right", "turn_right": "turn_left"}.get(action)  # type: ignore[assignment]
            if action in ("blink", "nod"):
                wrong_turn = _excursion(obs, base, "turn_left", limits, sign) or _excursion(
                    obs, base, "turn_right", limits, sign
                )
            else:
                wrong_turn = opposite is not None and _excursion(obs, base, opposite, limits, sign)
            if wrong_turn:
                reasons.append("wrong_action")
                break
            out = _excursion(obs, base, action, limits, sign)
        elif _neutral(obs, base, action, limits):
            completed.append(action)
            out = False
    return result(completed)


class LivenessChecker:
    """Turns frames into observations and evaluates challenges (frames processed in the engine's executor)."""

    def __init__(
        self, engine: FaceEngine, antispoof: AntiSpoof | None = None, limits: LivenessLimits = LivenessLimits()
    ):
        self.engine = engine
        self.antispoof = antispoof
        self.limits = limits

    def observe_sync(self, frame: Image, t: float, *, passive: bool = False) -> tuple[Observation, float | None]:
        """One frame's observation, and its passive anti-spoofing score when asked."""
        bgr = as_bgr(frame)
        faces = self.engine.detect_sync(bgr)
        if not faces:
            return Observation(t, 0), None
        main = max(faces, key=lambda f: f.area)
        others = [f for f in faces if f is not main and f.area >= self.engine.limits.second_face_ratio * main.area]
        yaw, pitch = main.pose()
        obs = Observation(t, 1 + len(others), yaw, pitch, eye_openness(align(bgr, main)))
        score = self.antispoof.score_sync(bgr, main) if passive and self.antispoof is not None else None
        return obs, score

    async def observe(self, frame: Image, t: float, *, passive: bool = False) -> tuple[Observation, float | None]:
        """:meth:`observe_sync` in the executor."""
        return await self.engine.run(self.observe_sync, frame, t, passive=passive)

    async def check(
        self,
        challenge: Challenge,
        frames: Sequence[tuple[float, Image]],
        *,
        mirrored: bool = False,
        passive_every: int = 5,
    ) -> LivenessResult:
        """Evaluate ``challenge`` on timestamped frames, scoring every ``passive_every``-th frame passively."""
        observations: list[Observation] = []
        scores: list[float] = []
        for i, (t, frame) in enumerate(frames):
            obs, score = await self.observe(frame, t, passive=passive_every > 0 and i % passive_every == 0)
            observations.append(obs)
            if score is not None:
                scores.append(score)
        passive = float(np.mean(scores)) if scores else None
        return evaluate(challenge, observations, self.limits, mirrored=mirrored, passive_score=passive)
