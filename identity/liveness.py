"""Active liveness: a random challenge (turn left/right, blink, nod) checked on live-video frames.

Each frame gives an :class:`Observation`: head yaw and pitch from YuNet's 5 landmarks and an eye
openness measure.  YuNet gives only eye centres, so openness is the vertical edge energy of the two
eye patches of the aligned 112x112 face, relative to their brightness: an open eye (lid line, iris,
sclera) has strong horizontal edges, a closed lid is smooth skin.  Each action must go out from the
customer's own neutral baseline (median of the first frames) and come back, in the asked order,
before the deadline.  The passive anti-spoofing score is reported as an extra signal only.

Movements prove that a live person is in front of the camera, not who it is, so the same person
must be seen throughout: the face may not jump between frames (a swapped photo or person), and
when a reference is given (the real-name photo on file) the most frontal frame of each stretch of
the challenge is sampled: the most frontal sample of all (the anchor) must match the reference,
and every other sample the anchor, both at the face threshold.  So the holder cannot pass the face
check and leave the movements to someone else (or the other way round), while a sample with the
head a little turned is compared with the same person on the same camera moments earlier, not with
a years-old registration photo.

Frames are the raw camera frames as sent over WebRTC (not the mirrored self-view): when the customer
turns to their left, their nose moves towards the image's right.  Pass ``mirrored=True`` otherwise.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import cv2
import numpy as np
import numpy.typing as npt

from identity.antispoof import AntiSpoof
from identity.face import MATCH_THRESHOLD, FaceEngine, FloatArray, as_embedding, cosine
from identity.facedetect import align
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
    "face_switched": (
        "The face in the picture changed during the check: start again, one person, staying in view.",
        "检测过程中画面里的人脸发生了变化：请重新开始，由本人一直保持在画面中。",
    ),
    "not_the_holder": (
        "The person doing the movements is not the account holder on file: the holder must do the check.",
        "做动作的人与登记的账户本人不一致：请由账户本人完成检测。",
    ),
}

#: (eye centre x, y) on the ArcFace template and the half-size of the eye patch.
EYE_CENTRES = ((38, 52), (74, 52))
EYE_HALF = (10, 6)


class UnusableReference(ValueError):
    """The reference photo given for a liveness check has no face to match the performer with."""


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


    def state(self) -> dict[str, object]:
        """Everything needed to evaluate the challenge later, anywhere (plain JSON): see :meth:`from_state`."""
        return {"id": self.id, "sequence": list(self.sequence), "issued_at": self.issued_at, "deadline": self.deadline}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Challenge:
        """The challenge :meth:`state` describes; ``ValueError`` if it is not one."""
        try:
            sequence = [str(a) for a in cast(list[object], state["sequence"])]
            issued, deadline = float(cast(float, state["issued_at"])), float(cast(float, state["deadline"]))
            cid = str(state["id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a liveness challenge state: {exc}") from exc
        if not sequence or any(a not in ACTIONS for a in sequence):
            raise ValueError(f"not a liveness challenge state: actions {sequence!r}")
        return cls(cid, tuple(cast(Action, a) for a in sequence), issued, deadline)


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
    box: tuple[float, float, float, float] | None = None


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
    #: Between two frames with a face, the face centre may move at most this many face widths...
    max_jump: float = 1.0
    #: ...and its width change at most by this factor; beyond either, it is another face.
    max_resize: float = 1.8
    #: Stretches of the challenge whose most frontal frame is matched with the reference.
    identity_samples: int = 5
    #: A sampled frame turned further than this (yaw ratio off the baseline) is not compared.
    identity_max_yaw: float = 0.3


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
    #: The anchor sample's cosine score against the reference, then the other samples' against the
    #: anchor (empty: no reference given).
    identity_scores: tuple[float, ...] = ()
    identity_threshold: float = MATCH_THRESHOLD
    #: Index (in the frames checked) of the anchor sample, the frame matched with the reference: the
    #: one to keep as evidence of who performed the challenge.
    anchor_frame: int | None = None

    def identity_json(self) -> dict[str, object] | None:
        """How the performer was matched with the reference (None without a reference); no template."""
        if not self.identity_scores:
            return None
        return {
            "compared": len(self.identity_scores),
            "reference_score": round(self.identity_scores[0], 4),
            "min_score": round(min(self.identity_scores), 4),
            "threshold": self.identity_threshold,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "challenge_id": self.challenge_id,
            "completed": list(self.completed),
            "reasons": [{"code": r, "en": REASONS[r][0], "zh": REASONS[r][1]} for r in self.reasons],
            "frames": self.frames,
            "passive_score": None if self.passive_score is None else round(self.passive_score, 4),
            "identity": self.identity_json(),
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
    identity_scores: Sequence[float] = (),
    identity_threshold: float = MATCH_THRESHOLD,
) -> LivenessResult:
    """Whether ``observations`` (in time order) perform ``challenge.sequence`` before the deadline,
    by one face throughout, matching the reference in every ``identity_scores`` (when given)."""
    sign = -1.0 if mirrored else 1.0
    in_time = [o for o in observations if challenge.issued_at <= o.t <= challenge.deadline]
    late = any(o.t > challenge.deadline for o in observations)
    reasons: list[str] = []

    def result(completed: list[Action]) -> LivenessResult:
        if len(completed) < len(challenge.sequence) and not reasons:
            reasons.append("expired" if late else "incomplete")
        return LivenessResult(
            not reasons,
            challenge.id,
            tuple(completed),
            tuple(dict.fromkeys(reasons)),
            len(observations),
            passive_score,
            identity_scores=tuple(identity_scores),
            identity_threshold=identity_threshold,
        )

    if any(o.faces > 1 for o in in_time):
        reasons.append("two_faces")
    seen = [o for o in in_time if o.faces == 1]
    if switched(seen, limits):
        reasons.append("face_switched")
    if any(score < identity_threshold for score in identity_scores):
        reasons.append("not_the_holder")
    if len(seen) < limits.baseline_frames + 2 * len(challenge.sequence):
        reasons.append("too_few_frames")
        return result([])
    if len(seen) < limits.min_face_fraction * len(in_time):
        reasons.append("face_lost")
    base = baseline(seen, limits)
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


def baseline(seen: Sequence[Observation], limits: LivenessLimits = LivenessLimits()) -> Observation:
    """The customer's neutral pose: the median of the first one-face frames (``seen`` is not empty)."""
    head = seen[: limits.baseline_frames]
    return Observation(
        head[0].t,
        1,
        float(np.median([o.yaw for o in head])),
        float(np.median([o.pitch for o in head])),
        float(np.median([o.openness for o in head])),
    )


def switched(seen: Sequence[Observation], limits: LivenessLimits = LivenessLimits()) -> bool:
    """Whether the face jumps between two successive frames that show one (another face took its place)."""
    boxes = [o.box for o in seen if o.box is not None]
    for (x0, y0, w0, h0), (x1, y1, w1, h1) in itertools.pairwise(boxes):
        width = max(w0, 1.0)
        moved = float(np.hypot(x1 + w1 / 2 - x0 - w0 / 2, y1 + h1 / 2 - y0 - h0 / 2)) / width
        if moved > limits.max_jump or not 1 / limits.max_resize <= max(w1, 1.0) / width <= limits.max_resize:
            return True
    return False


def identity_samples(
    observations: Sequence[Observation], count: int, limits: LivenessLimits = LivenessLimits()
) -> list[int]:
    """Indices of the frames to match with the reference: the challenge's one-face frames cut into
    ``count`` stretches, and in each the frame closest to the neutral pose (skipped when even that
    one is turned past ``identity_max_yaw``).  The first stretch holds the neutral baseline, so
    there is always at least one.  The most frontal of them comes first, the others in time order."""
    faced = [i for i, o in enumerate(observations) if o.faces == 1]
    if not faced:
        return []
    base = baseline([observations[i] for i in faced], limits)

    def off_neutral(i: int) -> float:
        return abs(observations[i].yaw - base.yaw) + abs(observations[i].pitch - base.pitch)

    chosen: list[int] = []
    for part in np.array_split(np.array(faced), min(count, len(faced))):
        best = min(part.tolist(), key=off_neutral)
        if abs(observations[best].yaw - base.yaw) <= limits.identity_max_yaw:
            chosen.append(best)
    if chosen:
        anchor = min(chosen, key=off_neutral)
        chosen.remove(anchor)
        chosen.insert(0, anchor)
    return chosen


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
        obs, score, _ = self._observe_sync(frame, t, passive)
        return obs, score

    def _observe_sync(
        self, frame: Image, t: float, passive: bool
    ) -> tuple[Observation, float | None, npt.NDArray[np.uint8] | None]:
        bgr = as_bgr(frame)
        faces = self.engine.detect_sync(bgr)
        if not faces:
            return Observation(t, 0), None, None
        main = max(faces, key=lambda f: f.area)
        others = [f for f in faces if f is not main and f.area >= self.engine.limits.second_face_ratio * main.area]
        yaw, pitch = main.pose()
        aligned = align(bgr, main)
        obs = Observation(t, 1 + len(others), yaw, pitch, eye_openness(aligned), main.box)
        score = self.antispoof.score_sync(bgr, main) if passive and self.antispoof is not None else None
        return obs, score, aligned

    def _identity_scores(
        self,
        observations: Sequence[Observation],
        aligned: Sequence[npt.NDArray[np.uint8] | None],
        reference: FloatArray,
    ) -> tuple[list[float], int | None]:
        """The anchor's score against the reference, then each other sample's against the anchor; and
        the anchor's index in ``observations``."""
        picked = [i for i in identity_samples(observations, self.limits.identity_samples, self.limits)
                  if aligned[i] is not None]
        if not picked:
            return [], None
        embedded = [self.engine.embed_aligned_sync(cast(npt.NDArray[np.uint8], aligned[i])) for i in picked]
        anchor = embedded[0]
        return [cosine(anchor, reference)] + [cosine(vec, anchor) for vec in embedded[1:]], picked[0]

    async def check(
        self,
        challenge: Challenge,
        frames: Sequence[tuple[float, Image]],
        *,
        mirrored: bool = False,
        passive_every: int = 5,
        reference: Image | FloatArray | None = None,
    ) -> LivenessResult:
        """Evaluate ``challenge`` on timestamped frames, scoring every ``passive_every``-th frame passively.

        With a ``reference`` (the real-name photo on file, or its embedding) the performer must be
        that person: the anchor sample is matched with it and the other samples with the anchor, at
        the engine's threshold.
        """
        ref_vec = None if reference is None else as_embedding(reference)
        if reference is not None and ref_vec is None:
            _, ref_vec = await self.engine.embed(cast(Image, reference))
            if ref_vec is None:
                raise UnusableReference(
                    "the reference photo on file shows no usable face, so the person doing the movements cannot "
                    "be matched with it: replace the real-name photo, or use the ID card path"
                )
        observations: list[Observation] = []
        aligned: list[npt.NDArray[np.uint8] | None] = []
        scores: list[float] = []
        for i, (t, frame) in enumerate(frames):
            obs, score, crop = await self.engine.run(
                self._observe_sync, frame, t, passive_every > 0 and i % passive_every == 0
            )
            observations.append(obs)
            aligned.append(crop)
            if score is not None:
                scores.append(score)
        passive = float(np.mean(scores)) if scores else None
        identity: list[float] = []
        anchor: int | None = None
        if ref_vec is not None:
            in_time = [i for i, o in enumerate(observations) if challenge.issued_at <= o.t <= challenge.deadline]
            identity, local = await self.engine.run(
                self._identity_scores, [observations[i] for i in in_time], [aligned[i] for i in in_time], ref_vec
            )
            anchor = None if local is None else in_time[local]
        result = evaluate(
            challenge,
            observations,
            self.limits,
            mirrored=mirrored,
            passive_score=passive,
            identity_scores=identity,
            identity_threshold=self.engine.threshold,
        )
        return dataclasses.replace(result, anchor_frame=anchor)
