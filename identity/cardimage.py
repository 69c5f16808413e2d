"""A document in a photo: its four corners found, the card rectified, and the capture quality gates.

Guidance for each gate is bilingual (English, Chinese), in words the customer can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]

CARD_W, CARD_H = 856, 540
CARD_RATIO = 85.6 / 54.0

GUIDANCE: dict[str, tuple[str, str]] = {
    "card_not_found": (
        "No card found: lay the card on a plain dark surface and fill most of the picture with it.",
        "未找到证件：请将证件放在深色平整的表面上，并让证件占满大部分画面。",
    ),
    "not_in_frame": ("Part of the card is cut off: show all four corners.", "证件不完整：请让证件四个角都在画面内。"),
    "low_resolution": ("The card is too small: move the camera closer.", "证件太小：请将摄像头靠近证件。"),
    "blurred": ("The card is blurred: hold still and let the camera focus.", "证件模糊：请保持稳定，等待对焦。"),
    "glare": ("Glare on the card: tilt it away from the light.", "证件反光：请调整角度避开光源。"),
    "no_portrait": ("No portrait found on the card: show the photo side.", "未找到证件照片：请出示人像面。"),
}

@dataclass(frozen=True)
class CardQuality:
    """Capture quality of a card photo, with measures."""

    found: bool
    issues: tuple[str, ...]
    sharpness: float = 0.0
    glare: float = 0.0
    card_width_px: float = 0.0

    def guidance(self) -> list[dict[str, str]]:
        return [{"code": c, "en": GUIDANCE[c][0], "zh": GUIDANCE[c][1]} for c in self.issues]


def order_corners(pts: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Corners as top-left, top-right, bottom-right, bottom-left, the long side horizontal."""
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    ring = pts[np.argsort(angles)]  # clockwise on screen, starting near the left
    start = int(np.argmin(ring.sum(axis=1)))
    ring = np.roll(ring, -start, axis=0)
    top = np.linalg.norm(ring[1] - ring[0])
    left = np.linalg.norm(ring[3] - ring[0])
    if left > top:  # portrait orientation: make the long side the top
        ring = np.roll(ring, -1, axis=0)
    return ring.astype(np.float32)


def find_card(image: U8) -> npt.NDArray[np.float32] | None:
    """The card's 4 corners in ``image`` (ordered), or None when no card-shaped quadrilateral is seen."""
    h, w = image.shape[:2]
    scale = 800 / max(h, w) if max(h, w) > 800 else 1.0
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1 else image
    gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    edges = cv2.dilate(cv2.Canny(gray, 30, 90), np.ones((3, 3), np.uint8))
    _, bright = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours: list[Any] = []
    for mask in (edges, bright):
        found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours.extend(found)
    area_min = 0.03 * small.shape[0] * small.shape[1]
    best: npt.NDArray[np.float32] | None = None
    best_area = 0.0
    hulls = sorted((cv2.convexHull(c) for c in contours), key=cv2.contourArea, reverse=True)
    for hull in hulls[:8]:
        area = cv2.contourArea(hull)
        if area < area_min:
            break
        approx = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True)
        if len(approx) == 4:
            quad = approx.reshape(4, 2).astype(np.float32)
        else:
            quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float32)
            if area < 0.85 * cv2.contourArea(quad):
                continue
        ordered = order_corners(quad)
        long_side = float(np.linalg.norm(ordered[1] - ordered[0]) + np.linalg.norm(ordered[2] - ordered[3]))
        short_side = float(np.linalg.norm(ordered[3] - ordered[0]) + np.linalg.norm(ordered[2] - ordered[1]))
        if not 1.2 <= long_side / max(short_side, 1.0) <= 2.1:
            continue
        if area > best_area:
            best, best_area = ordered, area
    return None if best is None else (best / scale).astype(np.float32)


def rectify(image: U8, corners: npt.NDArray[np.float32], size: tuple[int, int] = (CARD_W, CARD_H)) -> U8:
    """The document warped to a ``size`` image (default 856x540, the ID-1 ratio)."""
    w, h = size
    target = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(corners, target)
    return np.asarray(cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR), dtype=np.uint8)


@dataclass(frozen=True)
class CardLimits:
    """Capture quality thresholds."""

    min_card_width: float = 420.0
    min_sharpness: float = 40.0
    max_glare: float = 0.01
    border_margin: float = 0.01


def assess_card(image: U8, corners: npt.NDArray[np.float32] | None, card: U8, limits: CardLimits) -> CardQuality:
    """Quality gates on a capture (``card`` is the rectified card, or the whole image when not found)."""
    gray = cv2.cvtColor(card, cv2.COLOR_BGR2GRAY)
    sharp = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    hsv = cv2.cvtColor(card, cv2.COLOR_BGR2HSV)
    hot = ((hsv[:, :, 2] >= 250) & (hsv[:, :, 1] <= 40)).astype(np.uint8)
    glare = float(cv2.morphologyEx(hot, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)).mean())
    issues: list[str] = []
    width = float(card.shape[1])
    if corners is None:
        issues.append("card_not_found")
    else:
        h, w = image.shape[:2]
        mx, my = limits.border_margin * w, limits.border_margin * h
        if (
            (corners[:, 0] < mx).any()
            or (corners[:, 0] > w - 1 - mx).any()
            or (corners[:, 1] < my).any()
            or (corners[:, 1] > h - 1 - my).any()
        ):
            issues.append("not_in_frame")
        width = float(max(np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[3])))
        if width < limits.min_card_width:
            issues.append("low_resolution")
    if sharp < limits.min_sharpness:
        issues.append("blurred")
    if glare > limits.max_glare:
        issues.append("glare")
    return CardQuality(corners is not None, tuple(issues), sharp, glare, width)
