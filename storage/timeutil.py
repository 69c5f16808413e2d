"""UTC time helpers; every stored time is ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(dt: datetime | None = None) -> str:
    """``dt`` (default now) as ISO-8601 UTC text, as stored in the database."""
    return (dt or utcnow()).astimezone(UTC).isoformat()


def unix_iso(seconds: float | None) -> str | None:
    """Unix seconds (as signaling keeps times) as stored ISO-8601 UTC text; ``None`` stays ``None``."""
    return None if seconds is None else iso(datetime.fromtimestamp(seconds, UTC))


def parse_iso(text: str) -> datetime:
    """The inverse of :func:`iso`."""
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
