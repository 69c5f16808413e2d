"""Personal data in text: ID numbers, phone numbers and face templates (long runs of floats), for
the tests that scan logs, responses and stored rows for them."""

from __future__ import annotations

import re

# Digit runs inside decimal numbers (a score 0.17778404073, 1.3812345678e-05) are not phone numbers.
_NOT_DECIMAL_BEFORE = r"(?<![0-9.])"
_NOT_DECIMAL_AFTER = r"(?![0-9]|\.\d|[eE][-+]?\d)"
ID_18 = re.compile(_NOT_DECIMAL_BEFORE + r"\d{17}[0-9Xx]" + _NOT_DECIMAL_AFTER)
PHONE_11 = re.compile(_NOT_DECIMAL_BEFORE + r"1[3-9]\d{9}" + _NOT_DECIMAL_AFTER)
FLOATS = re.compile(r"(?:[-+]?\d*\.\d+(?:e[-+]?\d+)?[,\s]+){15,}")
HEX_DIGEST = re.compile(r"[0-9a-fA-F]{32,}")


def leaks(text: str) -> list[str]:
    """Each leak with some context around it.  Digit runs inside a hex digest (a sha256 of 64 hex
    characters holds 18 decimal digits in a row about once in a hundred) are not personal data."""
    digests = [m.span() for m in HEX_DIGEST.finditer(text)]
    found = []
    for pattern in (ID_18, PHONE_11, FLOATS):
        for m in pattern.finditer(text):
            if any(a <= m.start() and m.end() <= b for a, b in digests):
                continue
            found.append(text[max(0, m.start() - 60): m.end() + 20].replace("\n", " "))
    return found
