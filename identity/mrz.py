"""Passports: the machine readable zone (ICAO Doc 9303, TD3: two lines of 44 characters) read and checked.

Line 1: ``P`` + type + issuing state + ``SURNAME<<GIVEN<NAMES``.  Line 2: document number, nationality,
birth date, sex, expiry date and personal number, each with a check digit (weights 7, 3, 1; digits
count as themselves, A-Z as 10-35, the filler ``<`` as 0), and a composite check digit over all of
them.  OCR reads the zone as text lines; the usual confusions (O/0, I/1, S/5, B/8...) are undone by
what each position may hold, and the check digits decide whether what was read is what is printed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

LINE = 44
WEIGHTS = (7, 3, 1)

ERRORS: dict[str, str] = {
    "mrz_missing": "no passport machine readable zone (two lines of 44 characters) was read",
    "mrz_number": "the document number's check digit is wrong: misread or not genuine",
    "mrz_birth": "the birth date's check digit is wrong, or the date is not a real date",
    "mrz_expiry": "the expiry date's check digit is wrong, or the date is not a real date",
    "mrz_personal": "the personal number's check digit is wrong",
    "mrz_composite": "the composite check digit is wrong: some part of the zone was misread",
}

# What each position of line 2 may hold: n digit, a letter or filler, x either, s sex.
_LINE2 = "x" * 9 + "n" + "a" * 3 + "n" * 7 + "s" + "n" * 7 + "x" * 14 + "x" + "n"
_TO_DIGIT = str.maketrans("OQDIJLZSBGT", "00011125867")
_TO_LETTER = str.maketrans("012568", "OIZSGB")
_CHARS = re.compile(r"[A-Z0-9<]+")


def char_value(char: str) -> int:
    """The value of one MRZ character in a check digit."""
    if char.isdigit():
        return int(char)
    if "A" <= char <= "Z":
        return ord(char) - ord("A") + 10
    if char == "<":
        return 0
    raise ValueError(f"{char!r} cannot appear in a machine readable zone")


def check_digit(field: str) -> str:
    """The ICAO 9303 check digit of ``field``."""
    return str(sum(char_value(c) * WEIGHTS[i % 3] for i, c in enumerate(field)) % 10)


def _clean(text: str) -> str:
    text = text.upper().replace("«", "<<").replace("‹", "<").replace(" ", "")
    return "".join(_CHARS.findall(text))


def _repair_line2(text: str) -> str:
    out = []
    for char, kind in zip(text, _LINE2, strict=True):
        if kind == "n":
            char = char.translate(_TO_DIGIT)
        elif kind == "a":
            char = char.translate(_TO_LETTER)
        elif kind == "s" and char not in "MFX<":
            char = {"H": "M", "N": "M", "E": "F", "P": "F"}.get(char, char)
        out.append(char)
    return "".join(out)


def find_lines(texts: Sequence[str]) -> tuple[str, str] | None:
    """The two TD3 lines among OCR'd ``texts`` (top to bottom), repaired and padded, or None."""
    cleaned = [_clean(t) for t in texts]
    for i, text in enumerate(cleaned):
        if len(text) != LINE or i == 0 or not re.fullmatch(r"[A-Z0-9<]{9}[0-9OQDIL]", text[:10]):
            continue
        first = cleaned[i - 1]
        if not re.match(r"P[A-Z<][A-Z<]{3}", first) or len(first) > LINE:
            continue
        # OCR often drops part of line 1's trailing filler; line 2 must be whole to be trusted.
        return first.ljust(LINE, "<"), _repair_line2(text)
    return None


def _date(yymmdd: str, today: dt.date, *, past: bool) -> dt.date | None:
    """A YYMMDD date: a birth date in the hundred years up to today, an expiry at most twenty years ahead."""
    try:
        yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
        year = today.year // 100 * 100 + yy
        if year > today.year + (0 if past else 20):
            year -= 100
        date = dt.date(year, mm, dd)
        return None if past and date > today else date
    except ValueError:
        return None


@dataclass(frozen=True)
class Passport:
    """What a TD3 zone says, and which of its checks failed (codes of :data:`ERRORS`)."""

    fields: dict[str, str]
    errors: tuple[str, ...]
    birth_date: dt.date | None
    expiry: dt.date | None


def parse(line1: str, line2: str, today: dt.date | None = None) -> Passport:
    """Fields and check results of a TD3 zone (both lines exactly 44 characters)."""
    today = today or dt.date.today()
    if len(line1) != LINE or len(line2) != LINE:
        raise ValueError("a TD3 machine readable zone has two lines of 44 characters")
    names = line1[5:].rstrip("<")
    surname, _, given = names.partition("<<")
    number, nationality = line2[0:9], line2[10:13]
    birth, expiry, personal = line2[13:19], line2[21:27], line2[28:42]
    errors: list[str] = []
    if check_digit(number) != line2[9]:
        errors.append("mrz_number")
    birth_date = _date(birth, today, past=True)
    if check_digit(birth) != line2[19] or birth_date is None:
        errors.append("mrz_birth")
    expiry_date = _date(expiry, today, past=False)
    if check_digit(expiry) != line2[27] or expiry_date is None:
        errors.append("mrz_expiry")
    if line2[42] != "<" or personal.strip("<"):
        if check_digit(personal) != line2[42].replace("<", "0"):
            errors.append("mrz_personal")
    if check_digit(line2[0:10] + line2[13:20] + line2[21:43]) != line2[43]:
        errors.append("mrz_composite")
    sex = line2[20]
    fields = {
        "document_code": line1[0:2].rstrip("<"),
        "issuing_state": line1[2:5].replace("<", ""),
        "surname": surname.replace("<", " ").strip(),
        "given_names": given.replace("<", " ").strip(),
        "number": number.rstrip("<"),
        "nationality": nationality.replace("<", ""),
        "sex": {"M": "M", "F": "F"}.get(sex, "X"),
    }
    fields["name"] = " ".join(p for p in (fields["surname"], fields["given_names"]) if p)
    if birth_date is not None:
        fields["birth_date"] = birth_date.isoformat()
    if expiry_date is not None:
        fields["valid_until"] = expiry_date.isoformat()
    if personal.strip("<"):
        fields["personal_number"] = personal.rstrip("<")
    return Passport(fields, tuple(errors), birth_date, expiry_date)
