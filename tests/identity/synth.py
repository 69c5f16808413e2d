"""Synthetic identity material made from real photos, shared by the identity tests and the browser journey.

Head movements: the face warped onto a cylinder about the nose (turns, nods) and eyes painted over
with the cheek's colour (blinks).  ID cards: a front side laid out like a resident ID card, rendered
with Pillow and Noto CJK, carrying a real portrait, and photographed on a dark table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from identity.cardimage import CARD_H, CARD_W
from identity.face import Face

FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
BGR = np.ndarray


def turn(image: BGR, face: Face, degrees: float, vertical: bool = False, radius: float = 1.2) -> BGR:
    """The face turned on a cylinder about the nose: a synthetic head turn (yaw) or nod (pitch).

    Positive yaw degrees move the nose towards the image's right: the customer's own left on a
    camera frame that is not mirrored (what :func:`identity.liveness.evaluate` calls ``turn_left``).
    ``radius`` is the cylinder's, in eye distances.  How far YuNet's landmarks follow depends on the
    photo and framing: measure the readings for the photo you use (see ``tests/browser/test_journey.py``)."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = face.landmarks[2]
    radius = radius * face.eye_distance
    axis, c = (ys, centre[1]) if vertical else (xs, centre[0])
    u = np.clip((axis - c) / radius, -1, 1)
    src = np.where(np.abs(axis - c) < radius, c + radius * np.sin(np.arcsin(u) - np.radians(degrees)), axis)
    mapx, mapy = (xs, src.astype(np.float32)) if vertical else (src.astype(np.float32), ys)
    return np.asarray(cv2.remap(image, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), np.uint8)


def close_eyes(image: BGR, face: Face) -> BGR:
    """Eye regions painted over with the colour of the cheek: a synthetic closed-eye frame."""
    out = image.copy()
    lm, ed = face.landmarks, face.eye_distance
    cheek = image[int(lm[2][1]) : int(lm[2][1] + 0.2 * ed), int(lm[0][0]) : int(lm[0][0] + 0.15 * ed)]
    colour = tuple(int(c) for c in cheek.reshape(-1, 3).mean(0))
    for x, y in lm[:2]:
        cv2.ellipse(out, (int(x), int(y)), (int(0.3 * ed), int(0.15 * ed)), 0, 0, 360, colour, -1)
    return out


def poses(image: BGR, face: Face, yaw: float = 40, pitch: float = 35) -> dict[str, BGR]:
    """The neutral frame and the extreme frame of each liveness action (keys: ``identity.liveness.ACTIONS``)."""
    return {
        "neutral": image,
        "turn_left": turn(image, face, yaw),
        "turn_right": turn(image, face, -yaw),
        "nod": turn(image, face, pitch, vertical=True),
        "blink": close_eyes(image, face),
    }


def movement(image: BGR, face: Face, action: str, steps: int = 3, yaw: float = 40, pitch: float = 35) -> list[BGR]:
    """The frames of one action going out (``steps`` frames of a smooth ramp, ending at the extreme)."""
    if action == "blink":
        return [close_eyes(image, face)]
    if action not in ("turn_left", "turn_right", "nod"):
        raise ValueError(f"unknown action {action!r}")
    full = {"turn_left": yaw, "turn_right": -yaw, "nod": pitch}[action]
    return [turn(image, face, full * (i + 1) / steps, vertical=action == "nod") for i in range(steps)]


@dataclass(frozen=True)
class CardHolder:
    """What the front side of the card says; ``portrait`` is a BGR photo of the holder's face."""

    number: str
    portrait: BGR
    name: str = "王小梅"
    sex: str = "女"
    ethnicity: str = "汉"
    birth: dt.date = dt.date(1985, 11, 23)
    address: tuple[str, ...] = field(default=("上海市浦东新区世纪大道", "100号"))


def portrait_crop(photo: BGR) -> BGR:
    """Head and shoulders from a portrait photo, at the card's portrait size (210x260)."""
    h, w = photo.shape[:2]
    face = photo[int(0.05 * h) : int(0.65 * h), int(0.15 * w) : int(0.85 * w)]
    return np.asarray(cv2.resize(face, (210, 260), interpolation=cv2.INTER_AREA), np.uint8)


def _fonts() -> tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont]:
    if not FONT.is_file():
        pytest.skip("Noto CJK font not installed (apt-get install fonts-noto-cjk)")
    return ImageFont.truetype(str(FONT), 34), ImageFont.truetype(str(FONT), 30)


def render_card(holder: CardHolder) -> BGR:
    """A front side laid out like a resident ID card, with the holder's real portrait."""
    font, small = _fonts()
    card = Image.new("RGB", (CARD_W, CARD_H), (236, 240, 246))
    draw = ImageDraw.Draw(card)
    label = (70, 110, 160)
    draw.text((50, 50), "姓名", font=small, fill=label)
    draw.text((150, 46), holder.name, font=font, fill=(0, 0, 0))
    draw.text((50, 115), "性别", font=small, fill=label)
    draw.text((150, 111), holder.sex, font=font, fill=(0, 0, 0))
    draw.text((260, 115), "民族", font=small, fill=label)
    draw.text((360, 111), holder.ethnicity, font=font, fill=(0, 0, 0))
    draw.text((50, 180), "出生", font=small, fill=label)
    b = holder.birth
    draw.text((150, 176), f"{b.year} 年 {b.month} 月 {b.day} 日", font=font, fill=(0, 0, 0))
    draw.text((50, 245), "住址", font=small, fill=label)
    for i, line in enumerate(holder.address):
        draw.text((150, 241 + 50 * i), line, font=font, fill=(0, 0, 0))
    draw.text((50, 440), "公民身份号码", font=small, fill=label)
    draw.text((300, 436), holder.number, font=font, fill=(0, 0, 0))
    card.paste(Image.fromarray(cv2.cvtColor(holder.portrait, cv2.COLOR_BGR2RGB)), (600, 60))
    out = cv2.cvtColor(np.asarray(card), cv2.COLOR_RGB2BGR)
    cv2.rectangle(out, (0, 0), (CARD_W - 1, CARD_H - 1), (200, 205, 215), 3)
    return np.asarray(out, np.uint8)


def render_back() -> BGR:
    """The back side: issuing authority and a validity period that ended on 2025-03-01."""
    font, _ = _fonts()
    card = Image.new("RGB", (CARD_W, CARD_H), (236, 240, 246))
    draw = ImageDraw.Draw(card)
    draw.text((120, 80), "中华人民共和国", font=font, fill=(0, 0, 0))
    draw.text((120, 130), "居民身份证", font=font, fill=(0, 0, 0))
    draw.text((80, 380), "签发机关  上海市公安局浦东分局", font=font, fill=(0, 0, 0))
    draw.text((80, 440), "有效期限  2015.03.01-2025.03.01", font=font, fill=(0, 0, 0))
    return np.asarray(cv2.cvtColor(np.asarray(card), cv2.COLOR_RGB2BGR), np.uint8)


def on_table(card: BGR, corners: list[tuple[float, float]], size: tuple[int, int] = (1280, 960)) -> BGR:
    """The card photographed on a dark table: placed by a perspective transform at ``corners``."""
    rng = np.random.default_rng(1)
    scene = rng.integers(25, 55, (size[1], size[0], 3), dtype=np.uint8)
    h, w = card.shape[:2]
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, np.array(corners, np.float32))
    warped = cv2.warpPerspective(card, matrix, size)
    mask = cv2.warpPerspective(np.full(card.shape[:2], 255, np.uint8), matrix, size)
    scene[mask > 0] = warped[mask > 0]
    return scene


def rotated(
    angle: float, centre: tuple[float, float] = (640, 480), width: float = 900, ratio: float = CARD_W / CARD_H
) -> list[tuple[float, float]]:
    """The corners of a card ``width`` pixels wide, turned by ``angle`` degrees about ``centre``."""
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [width / 2, width / 2 / ratio]
    a = np.radians(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return [(float(x), float(y)) for x, y in (half @ rot.T + centre)]


#: Noto Sans Mono CJK SC, inside the same collection: the zone is set in a monospaced face like OCR-B.
MONO_INDEX = 7


@dataclass(frozen=True)
class PassportHolder:
    """What a passport data page says; ``portrait`` is a BGR photo of the holder's face."""

    portrait: BGR
    surname: str = "WANG"
    given_names: str = "XIAOMEI"
    number: str = "EH1234567"
    sex: str = "F"
    birth: dt.date = dt.date(1985, 11, 23)
    expiry: dt.date = dt.date(2031, 5, 9)
    nationality: str = "CHN"


def passport_zone(holder: PassportHolder, *, check: Callable[[str], str]) -> tuple[str, str]:
    """The two TD3 lines of the holder's data page, check digits from ``check``."""
    names = (holder.surname + "<<" + holder.given_names.replace(" ", "<")).ljust(39, "<")
    line1 = f"P<{holder.nationality}{names}"
    number = holder.number.ljust(9, "<")
    birth, expiry = holder.birth.strftime("%y%m%d"), holder.expiry.strftime("%y%m%d")
    personal = "<" * 14
    body = f"{number}{check(number)}{holder.nationality}{birth}{check(birth)}{holder.sex}{expiry}{check(expiry)}"
    line2 = body + personal + "<"
    composite = check(line2[0:10] + line2[13:20] + line2[21:43])
    return line1, line2 + composite


def render_passport(holder: PassportHolder, zone: tuple[str, str]) -> BGR:
    """A data page laid out like a passport's (ID-3, 1250x880), with its machine readable zone."""
    font, small = _fonts()
    mono = ImageFont.truetype(str(FONT), 31, index=MONO_INDEX)
    page = Image.new("RGB", (1250, 880), (232, 238, 230))
    draw = ImageDraw.Draw(page)
    label = (70, 110, 160)
    draw.text((420, 40), "中华人民共和国  护照", font=font, fill=(0, 0, 0))
    draw.text((420, 90), "PEOPLE'S REPUBLIC OF CHINA  PASSPORT", font=small, fill=label)
    rows = [
        ("姓 Surname", holder.surname),
        ("名 Given names", holder.given_names),
        ("性别 Sex", holder.sex),
        ("出生日期 Date of birth", holder.birth.strftime("%d %b %Y").upper()),
        ("有效期至 Date of expiry", holder.expiry.strftime("%d %b %Y").upper()),
        ("护照号 Passport No.", holder.number),
    ]
    for i, (name, value) in enumerate(rows):
        draw.text((420, 160 + 75 * i), name, font=small, fill=label)
        draw.text((420, 192 + 75 * i), value, font=small, fill=(0, 0, 0))
    page.paste(Image.fromarray(cv2.cvtColor(holder.portrait, cv2.COLOR_BGR2RGB)).resize((300, 370)), (60, 170))
    draw.text((40, 730), zone[0], font=mono, fill=(0, 0, 0))
    draw.text((40, 795), zone[1], font=mono, fill=(0, 0, 0))
    out = cv2.cvtColor(np.asarray(page), cv2.COLOR_RGB2BGR)
    cv2.rectangle(out, (0, 0), (1249, 879), (190, 200, 190), 3)
    return np.asarray(out, np.uint8)
