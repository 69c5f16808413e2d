"""Numbers from the query string and the path, parsed in one place.

A malformed number (not plain ASCII digits, ``nan``, ``inf``, a fraction where a whole number is
meant) or one outside its bounds is ``400 bad_request`` naming the parameter and what it must be:
never a 500 from a value the database cannot hold, never a silent default or clamp.
"""

from __future__ import annotations

import math
import re

from aiohttp import web

from web.errors import ApiError

#: The largest value an id or sequence column holds (a signed 64-bit integer).
BIGINT_MAX = 2**63 - 1
#: The longest look-back of the supervisor's metrics and KPIs (31 days).
MAX_HOURS = 24.0 * 31

_INT = re.compile(r"-?[0-9]{1,19}", re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]{1,15}(\.[0-9]{0,15})?|\.[0-9]{1,15})", re.ASCII)


def parse_int(raw: str, name: str, *, lo: int = 0, hi: int = BIGINT_MAX) -> int:
    """``raw`` as a whole number from ``lo`` to ``hi``, or :class:`ApiError` 400."""
    value = int(raw) if _INT.fullmatch(raw) else None
    if value is None or not lo <= value <= hi:
        raise ApiError(400, "bad_request", f"{name!r} must be a whole number from {lo} to {hi}, not {raw[:30]!r}",
                       field=name)
    return value


def parse_float(raw: str, name: str, *, gt: float, le: float) -> float:
    """``raw`` as a finite decimal number above ``gt`` and at most ``le``, or :class:`ApiError` 400."""
    value = float(raw) if _FLOAT.fullmatch(raw) else math.nan
    if not (math.isfinite(value) and gt < value <= le):
        raise ApiError(400, "bad_request", f"{name!r} must be a number above {gt:g} and at most {le:g}, "
                                           f"not {raw[:30]!r}", field=name)
    return value


def query_int(request: web.Request, name: str, default: int | None = None, *, lo: int = 0,
              hi: int = BIGINT_MAX) -> int:
    """The query parameter ``name`` as a whole number; ``default`` when absent or empty (required if
    ``default`` is ``None``)."""
    raw = request.query.get(name, "")
    if raw == "":
        if default is None:
            raise ApiError(400, "bad_request", f"give the query parameter {name!r} (a whole number)", field=name)
        return default
    return parse_int(raw, name, lo=lo, hi=hi)


def optional_query_int(request: web.Request, name: str, *, lo: int = 0, hi: int = BIGINT_MAX) -> int | None:
    """The query parameter ``name`` as a whole number, or ``None`` when absent or empty."""
    raw = request.query.get(name, "")
    return None if raw == "" else parse_int(raw, name, lo=lo, hi=hi)


def query_float(request: web.Request, name: str, default: float, *, gt: float, le: float) -> float:
    """The query parameter ``name`` as a finite number in ``(gt, le]``; ``default`` when absent or empty."""
    raw = request.query.get(name, "")
    return default if raw == "" else parse_float(raw, name, gt=gt, le=le)


def path_int(request: web.Request, name: str, *, lo: int = 0, hi: int = BIGINT_MAX) -> int:
    """The path part ``{name}`` as a whole number (an id or a sequence number)."""
    return parse_int(request.match_info[name], name, lo=lo, hi=hi)
