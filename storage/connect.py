"""Open a database from its URL."""

from __future__ import annotations

from storage.base import Database, DatabaseError


async def open_database(url: str) -> Database:
    """Connect to ``sqlite:///...`` or ``postgresql://...``."""
    if url.startswith("sqlite:"):
        from storage.sqlite import SQLiteDatabase

        return await SQLiteDatabase.connect(url)
    if url.startswith(("postgresql:", "postgres:")):
        from storage.postgres import PostgresDatabase

        return await PostgresDatabase.connect(url)
    scheme = url.split(":", 1)[0]
    raise DatabaseError(f"unsupported database scheme {scheme!r}; use sqlite:/// or postgresql://")
