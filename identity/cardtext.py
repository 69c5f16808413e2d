"""The resident ID card's text: the GB 11643 number check, OCR lines in reading order, the printed fields.

The 18-character number carries a province code, the birth date, the sex (17th digit, odd for
男) and a MOD 11-2 check character; :func:`validate_number` checks all of them.  :func:`parse_fields`
reads either side of the card from OCR lines whatever way the engine split the labels.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from identity import mrz

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CODES = "10X98765432"
#: GB/T 2260 province-level codes (first two digits of the number).
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)

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


def looks_read(lines: Sequence[OcrLine]) -> bool:
    """Whether the OCR lines hold what an upright document shows (its number, issuer or zone)."""
    if any(_NUMBER.search(_compact(ln.text)) or "签发" in ln.text for ln in lines):
        return True
    return mrz.find_lines(rows(lines)) is not None
