"""ID document capture: find and rectify the document, quality gates, portrait, OCR and field validation.

A :class:`DocumentType` is a size and a reader from OCR lines to checked fields.  Two are known: the
PRC resident identity card (居民身份证, ID-1 size 85.6 x 54 mm; GB 11643 number) and the passport
data page (ID-3 size 125 x 88 mm; the ICAO 9303 machine readable zone, :mod:`identity.mrz`).  Each
photo is tried against them in :data:`DOCUMENTS` order, the passport first since its zone is
unmistakable; another type is one more entry there.

Finding and rectifying the card and its quality gates are in :mod:`identity.cardimage`, the
number check and field parsing in :mod:`identity.cardtext`; their names are importable from here too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from identity import mrz
from identity.cardimage import (
    CARD_H,
    CARD_RATIO,
    CARD_W,
    GUIDANCE,
    U8,
    CardLimits,
    CardQuality,
    assess_card,
    find_card,
    order_corners,
    rectify,
)
from identity.cardtext import (
    CHECK_CODES,
    PROVINCES,
    WEIGHTS,
    NumberCheck,
    OcrLine,
    age_on,
    check_digit,
    looks_read,
    parse_fields,
    rows,
    validate_number,
)
from identity.face import FaceEngine
from identity.images import Image, as_bgr
from identity.models import ModelMissingError, create_session, default_threads, ensure_model

__all__ = [
    "CARD_H",
    "CARD_RATIO",
    "CARD_W",
    "CHECK_CODES",
    "DOCUMENTS",
    "ERRORS",
    "GUIDANCE",
    "PASSPORT",
    "PHOTO_SIDES",
    "PROVINCES",
    "RESIDENT_ID",
    "U8",
    "WEIGHTS",
    "CardLimits",
    "CardQuality",
    "DocumentType",
    "IdCardReader",
    "IdCardResult",
    "NumberCheck",
    "OcrLine",
    "Reading",
    "age_on",
    "assess_card",
    "check_digit",
    "find_card",
    "order_corners",
    "parse_fields",
    "read_id",
    "read_passport",
    "read_resident_id",
    "rectify",
    "rows",
    "validate_number",
]

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
        if corners is not None and not looks_read(lines):
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
