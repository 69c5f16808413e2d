"""``counter staffing [--date YYYY-MM-DD]``: the staffing table (Erlang C per lane and half hour)."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date, datetime


async def _table(database_url: str, day: date, utc_offset_h: float) -> list[dict[str, object]]:
    from counter.staffing import staffing_table
    from storage import migrate, open_database

    db = await open_database(database_url)
    try:
        await migrate(db)
        return [r.to_json() for r in await staffing_table(db, day, utc_offset_h)]
    finally:
        await db.close()


def _staffing(args: argparse.Namespace) -> int:
    from counter.cli import settings_from_args
    from counter.staffing import Row, format_table, local_zone

    try:
        day = date.fromisoformat(args.date) if args.date else datetime.now(local_zone(args.utc_offset)).date()
    except ValueError:
        print(f"counter staffing: --date {args.date!r}: expected YYYY-MM-DD")
        return 2
    settings = settings_from_args(args)
    rows = asyncio.run(_table(settings.effective_database_url, day, args.utc_offset))
    if args.json:
        print(json.dumps({"date": day.isoformat(), "rows": rows}, ensure_ascii=False))
    else:
        print(f"staffing for {day.isoformat()} (UTC{args.utc_offset:+g}), Erlang C per 30-minute interval")
        print(format_table([Row(**r) for r in rows]))  # type: ignore[arg-type]
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("staffing", help="agents needed per lane and half hour (Erlang C, forecast)")
    cmd.add_argument("--date", default=None, help="the local date, YYYY-MM-DD (default: today)")
    cmd.add_argument("--utc-offset", type=float, default=8.0, help="the local zone's offset in hours (default 8)")
    cmd.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    cmd.set_defaults(func=_staffing)
