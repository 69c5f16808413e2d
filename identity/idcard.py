"""ID document capture: find and rectify the document, quality gates, portrait, OCR and field validation.

A :class:`DocumentType` is a size and a reader from OCR lines to checked fields.  Two are known: the
PRC resident identity card (居民身份证, ID-1 size 85.6 x 54 mm; GB 11643 number) and the passport
data page (ID-3 size 125 x 88 mm; the ICAO 9303 machine readable zone, :mod:`identity.mrz`).  Each
photo is tried against them in :data:`DOCUMENTS` order, the passport first since its zone is
unmistakable; another type is one more entry there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from identity import mrz
from identity.face import FaceEngine
from identity.images import Image, as_bgr
from identity.models import ModelMissingError, create_session, default_threads, ensure_model

U8 = npt.NDArray[np.uint8]

CARD_W, CARD_H = 856, 540
CARD_RATIO = 85.6 / 54.0
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CODES = "10X98765432"
#: GB/T 2260 province-level codes (first two digits of the number).
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)

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

ERRORS: dict[str, str] = {
    "number_missing": "no 18-digit ID number was read",
    "number_format": "the ID number is not 17 digits and a check character",
    "check_digit": "the check digit is wrong (GB 11643 MOD 11-2): the number was misread or is not genuine",
    "region": "the first two digits are not a province code",
    "birth_date": "the number's birth date is not a real date",
    "birth_mismatch": "the birth date printed on the card differs from the one in the number",
    "sex_mismatch": "the sex printed on the card differs from the one in the number",
    "expired": "the document has expired",
    **mrz.ERRORS,
}


def check_digit(first17: str) -> str:
    """The GB 11643-1999 MOD 11-2 check character for the first 17 digits."""
    return CHECK_CODES[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True)
class NumberCheck:
    """What an 18-digit ID number says and whether it is consistent."""

    number: str
    errors: tuple[str, ...]
    birth_date: dt.date | None = None
    sex: str | None = None
    age: int | None = None

    @property
    def valid(self) -> bool:
        return not self.errors


def age_on(birth: dt.date, today: dt.date) -> int:
    """Completed years from ``birth`` to ``today``."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def validate_number(number: str, today: dt.date | None = None) -> NumberCheck:
    """Format, check digit, province code and birth date of an ID number; derives sex and age."""
    today = today or dt.date.today()
    number = number.strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return NumberCheck(number, ("number_format",))
    errors: list[str] = []
    if check_digit(number[:17]) != number[17]:
        errors.append("check_digit")
    if number[:2] not in PROVINCES:
        errors.append("region")
    birth: dt.date | None
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        if not dt.date(1900, 1, 1) <= birth <= today:
            raise ValueError("out of range")
    except ValueError:
        birth = None
        errors.append("birth_date")
    sex = "男" if int(number[16]) % 2 else "女"
    return NumberCheck(number, tuple(errors), birth, sex, None if birth is None else age_on(birth, today))


@dataclass(frozen=True)
class OcrLine:
    """One line of recognised text, its box (4 points) and confidence."""

    text: str
    box: tuple[tuple[float, float], ...]
    confidence: float

    @property
    def top(self) -> float:
        return min(p[1] for p in self.box)

    @property
    def left(self) -> float:
        return min(p[0] for p in self.box)

    @property
    def height(self) -> float:
        return max(p[1] for p in self.box) - self.top

    @property
    def middle(self) -> float:
        return self.top + self.height / 2


def rows(lines: Sequence[OcrLine]) -> list[str]:
    """Lines grouped into rows (by vertical centre), each row's texts joined left to right."""
    if not lines:
        return []
    tolerance = 0.5 * float(np.median([ln.height for ln in lines]))
    groups: list[list[OcrLine]] = []
    for ln in sorted(lines, key=lambda ln: ln.middle):
        if groups and abs(ln.middle - np.mean([g.middle for g in groups[-1]])) <= tolerance:
            groups[-1].append(ln)
        else:
            groups.append([ln])
    return ["".join(_compact(ln.text) for ln in sorted(g, key=lambda ln: ln.left)) for g in groups]


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text)


_NUMBER = re.compile(r"(?<!\d)([1-9]\d{16}[\dXx])(?!\d)")
_DATE = r"(\d{4})\s*[.\-年/]\s*(\d{1,2})\s*[.\-月/]\s*(\d{1,2})"


def parse_fields(lines: Sequence[OcrLine]) -> dict[str, str]:
    """Fields of either side of the card from OCR lines (reading order: top to bottom, left to right)."""
    texts = rows(lines)
    joined = "\n".join(texts)
    fields: dict[str, str] = {}
    for i, text in enumerate(texts):
        if text.startswith("姓名"):
            value = text[2:] or (texts[i + 1] if i + 1 < len(texts) else "")
            if value:
                fields["name"] = value
        elif text.startswith("住址"):
            parts = [text[2:]]
            for nxt in texts[i + 1 :]:
                if nxt.startswith(("公民身份号码", "公民", "身份")) or _NUMBER.search(nxt):
                    break
                parts.append(nxt)
            if "".join(parts):
                fields["address"] = "".join(parts)
        elif text.startswith("签发机关") and len(text) > 4:
            fields["authority"] = text[4:]
    if m := re.search(r"性别([男女])", joined):
        fields["sex"] = m.group(1)
    if m := re.search(r"民族([\u4e00-\u9fff]{1,8}?)(?:\n|$|出生)", joined):
        fields["ethnicity"] = m.group(1)
    if m := re.search(r"出生" + _DATE, joined):
        fields["birth_date"] = f"{int(m.group(1)):04d}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    if m := _NUMBER.search(joined.replace(" ", "")):
        fields["number"] = m.group(1).upper()
    if m := re.search(r"有效期限" + _DATE + r"[-—–至~]+(?:" + _DATE + r"|(长期))", joined):
        fields["valid_from"] = f"{int(m.group(1)):04d}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
        fields["valid_until"] = (
            "long-term" if m.group(7) else f"{int(m.group(4)):04d}-{int(m.group(5)):02d}-{int(m.group(6)):02d}"
        )
    return fields


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


@dataclass(frozen=True)
class IdCardResult:
    """What was read from a card photo.  ``portrait`` is a BGR crop for face matching (not serialised)."""

    side: str
    fields: dict[str, str]
    number_valid: bool
    errors: tuple[str, ...]
    quality: CardQuality
    age: int | None = None
    portrait: U8 | None = field(default=None, repr=False)
    lines: tuple[OcrLine, ...] = field(default=(), repr=False)
    document: str = "resident_id"
    #: What the document type declares it may prove (:attr:`DocumentType.raises`); None: nothing.
    raises: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "document": self.document,
            "raises": self.raises,
            "side": self.side,
            "fields": self.fields,
            "number_valid": self.number_valid,
            "errors": [{"code": e, "en": ERRORS.get(e, e)} for e in self.errors],
            "age": self.age,
            "quality": {
                "card_found": self.quality.found,
                "issues": self.quality.guidance(),
                "sharpness": round(self.quality.sharpness, 1),
                "glare": round(self.quality.glare, 4),
                "card_width_px": round(self.quality.card_width_px),
            },
            "portrait": self.portrait is not None,
        }


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


@dataclass(frozen=True)
class Reading:
    """What a document type made of a photo's OCR lines: the side shown, fields, error codes, age."""

    side: str
    fields: dict[str, str]
    errors: tuple[str, ...]
    age: int | None = None


#: Sides that carry the holder's portrait and the number (the ones that can prove who someone is).
PHOTO_SIDES = frozenset({"front", "data_page"})


@dataclass(frozen=True)
class DocumentType:
    """A kind of identity document: its size, how its OCR lines become checked fields, and what it may prove.

    ``read`` returns None when the lines are not this kind of document.  ``raises`` is the identity
    assurance level a good read of it may prove, on the caller's scale (3: A3, the holder's ID
    document); ``None`` until someone decides it: such a document is read, but proves nothing.
    """

    name: str
    width_mm: float
    height_mm: float
    read: Callable[[Sequence[OcrLine], dt.date], Reading | None]
    raises: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        """The rectified image size, 10 px a millimetre."""
        return round(self.width_mm * 10), round(self.height_mm * 10)


def _expired(fields: dict[str, str], today: dt.date) -> bool:
    until = fields.get("valid_until")
    return bool(until) and until != "long-term" and dt.date.fromisoformat(str(until)) < today


def read_resident_id(lines: Sequence[OcrLine], today: dt.date) -> Reading:
    """Either side of a resident ID card (always answers: ``unknown`` when neither side was read)."""
    fields = parse_fields(lines)
    side = "front" if "number" in fields or "name" in fields else "back" if "authority" in fields else "unknown"
    errors: list[str] = []
    age = None
    if side != "back":
        if "number" not in fields:
            errors.append("number_missing")
        else:
            check = validate_number(fields["number"], today)
            errors.extend(check.errors)
            age = check.age
            if check.birth_date and fields.get("birth_date") not in (None, check.birth_date.isoformat()):
                errors.append("birth_mismatch")
            if check.sex and fields.get("sex") not in (None, check.sex):
                errors.append("sex_mismatch")
    if _expired(fields, today):
        errors.append("expired")
    return Reading(side, fields, tuple(errors), age)


def read_passport(lines: Sequence[OcrLine], today: dt.date) -> Reading | None:
    """A passport data page, from its machine readable zone (None when no zone was read)."""
    zone = mrz.find_lines(rows(lines))
    if zone is None:
        return None
    passport = mrz.parse(*zone, today)
    errors = list(passport.errors)
    if passport.expiry is not None and passport.expiry < today:
        errors.append("expired")
    age = None if passport.birth_date is None else age_on(passport.birth_date, today)
    return Reading("data_page", passport.fields, tuple(errors), age)


RESIDENT_ID = DocumentType("resident_id", 85.6, 54.0, read_resident_id, raises=3)
#: Read (fields, portrait), but not declared as proof of anything: lines are registered with a resident ID.
PASSPORT = DocumentType("passport", 125.0, 88.0, read_passport)
#: Tried in this order; the resident ID card last, as it always gives a reading.
DOCUMENTS: tuple[DocumentType, ...] = (PASSPORT, RESIDENT_ID)


def _looks_read(lines: Sequence[OcrLine]) -> bool:
    """Whether the OCR lines hold what an upright document shows (its number, issuer or zone)."""
    if any(_NUMBER.search(_compact(ln.text)) or "签发" in ln.text for ln in lines):
        return True
    return mrz.find_lines(rows(lines)) is not None


class IdCardReader:
    """Reads ID cards; the OCR engine is created once, on first use, and shared (thread-safe)."""

    def __init__(
        self,
        face_engine: FaceEngine | None = None,
        *,
        threads: int = 0,
        limits: CardLimits = CardLimits(),
        models_dir: Path | None = None,
    ) -> None:
        self.face_engine = face_engine
        self.threads = threads or default_threads()
        self.limits = limits
        registry = face_engine.registry if face_engine is not None else None
        self.models_dir = models_dir if models_dir is not None or registry is None else registry.models_dir
        self.providers = registry.providers if registry is not None else None
        self._ocr: Any = None
        self._lock = threading.Lock()

    def ocr_engine(self) -> Any:
        """The shared RapidOCR engine on the pinned PP-OCRv4 files (hash-checked, as every model is)."""
        with self._lock:
            if self._ocr is None:
                try:
                    from rapidocr_onnxruntime import RapidOCR
                except ImportError as exc:
                    raise ModelMissingError(
                        "the OCR engine (rapidocr-onnxruntime, whose wheel carries the PP-OCRv4 models) is not "
                        "installed: pip install --no-deps rapidocr-onnxruntime==1.4.4 and pip install -e '.[ocr]'"
                    ) from exc
                paths = {part: ensure_model(f"ocr_{part}", self.models_dir, allow_download=False)
                         for part in ("det", "cls", "rec")}
                ocr = RapidOCR(
                    det_model_path=str(paths["det"]),
                    cls_model_path=str(paths["cls"]),
                    rec_model_path=str(paths["rec"]),
                    intra_op_num_threads=self.threads,
                    inter_op_num_threads=1,
                )
                # RapidOCR leaves thread spinning on, which fights the face models for the cores:
                # its three sessions are remade with ours (same verified files; spinning off).
                for holder, part in ((ocr.text_det.infer, "det"), (ocr.text_cls.infer, "cls"),
                                     (ocr.text_rec.session, "rec")):
                    holder.session = create_session(paths[part], self.providers, self.threads)
                self._ocr = ocr
            return self._ocr

    def ocr_sync(self, image: U8) -> list[OcrLine]:
        """Text lines in ``image``."""
        raw, _ = self.ocr_engine()(image)
        return [
            OcrLine(str(text), tuple((float(x), float(y)) for x, y in box), float(conf))
            for box, text, conf in raw or []
        ]

    def portrait_sync(self, card: U8) -> U8 | None:
        """The holder's photo on a rectified front side (a crop around the largest face), or None."""
        if self.face_engine is None:
            return None
        faces = self.face_engine.detect_sync(card)
        if not faces:
            return None
        x, y, w, h = max(faces, key=lambda f: f.area).box
        cx, cy, half = x + w / 2, y + h / 2, 0.9 * max(w, h)
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(card.shape[1], int(cx + half)), min(card.shape[0], int(cy + half))
        return card[y0:y1, x0:x1].copy()

    def read_sync(self, image: Image, today: dt.date | None = None, *, faces: bool = True) -> IdCardResult:
        """Find, rectify, assess, OCR and validate one card photo.

        ``faces=False``: no face detection at all (no portrait), for customers who declined face processing.
        """
        today = today or dt.date.today()
        bgr = as_bgr(image)
        corners = find_card(bgr)
        card = rectify(bgr, corners) if corners is not None else bgr
        quality = assess_card(bgr, corners, card, self.limits)
        lines = self.ocr_sync(card)
        if corners is not None and not _looks_read(lines):
            rotated = np.ascontiguousarray(card[::-1, ::-1])  # upside-down document
            flipped = self.ocr_sync(rotated)
            if len(flipped) > len(lines):
                card, lines = rotated, flipped
                corners = np.roll(corners, 2, axis=0)
        doc, reading = RESIDENT_ID, None
        for doc in DOCUMENTS:
            if (reading := doc.read(lines, today)) is not None:
                break
        assert reading is not None  # the last type always answers
        if doc.size != (CARD_W, CARD_H) and corners is not None:
            card = rectify(bgr, corners, doc.size)  # the portrait in its own proportions
        photo_side = reading.side in PHOTO_SIDES
        portrait = self.portrait_sync(card) if photo_side and faces else None
        if photo_side and quality.found and portrait is None and self.face_engine is not None and faces:
            quality = CardQuality(
                True, (*quality.issues, "no_portrait"), quality.sharpness, quality.glare, quality.card_width_px
            )
        valid = photo_side and not reading.errors
        return IdCardResult(
            reading.side, reading.fields, valid, reading.errors, quality, reading.age, portrait, tuple(lines), doc.name,
            doc.raises,
        )

    async def read(self, image: Image, today: dt.date | None = None, *, faces: bool = True) -> IdCardResult:
        """:meth:`read_sync` in the face engine's executor (or the loop's default one)."""
        read = functools.partial(self.read_sync, faces=faces)
        if self.face_engine is not None:
            return await self.face_engine.run(read, image, today)
        return await asyncio.get_running_loop().run_in_executor(None, read, image, today)


_default_reader: IdCardReader | None = None


def read_id(image: Image, today: dt.date | None = None) -> IdCardResult:
    """Read a card photo with a shared reader without face detection (use :class:`IdCardReader` for portraits)."""
    global _default_reader
    if _default_reader is None:
        _default_reader = IdCardReader()
    return _default_reader.read_sync(image, today)
