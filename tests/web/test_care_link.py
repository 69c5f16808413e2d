"""Care links: sealed, expiring hints of a line; the holder's age on a date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from counter.sealed import Sealer
from web.care_link import age_on, mint, read


def test_a_hint_opens_only_unchanged_and_before_it_expires(tmp_path: Path) -> None:
    sealer = Sealer(tmp_path / "master.key")
    token, expires = mint(sealer, "13700137000", 60, now=1000.0)
    assert expires == 1060.0 and "13700137000" not in token
    assert read(sealer, token, now=1059.0) == "13700137000"
    assert read(sealer, token, now=1061.0) is None  # expired
    assert read(sealer, token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:], now=1000.0) is None  # forged
    assert read(sealer, "", now=1000.0) is None and read(sealer, "x" * 5000, now=1000.0) is None
    assert read(Sealer(tmp_path / "other.key"), token, now=1000.0) is None  # another service's key


def test_age_counts_whole_years() -> None:
    assert age_on("1961-08-04", dt.date(2026, 8, 3)) == 64
    assert age_on("1961-08-04", dt.date(2026, 8, 4)) == 65
