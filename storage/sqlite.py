"""SQLite back-end: one connection in WAL mode, serialised by an asyncio lock.

The database file and its ``-wal`` / ``-shm`` companions hold personal data: they are created (and
kept) mode 0600, in a folder created 0700.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from storage.base import Database, DatabaseError, Dialect, Executor, IntegrityError, Row, driver_errors

_PLACEHOLDER = re.compile(r"\$(\d+)")


def to_sqlite(sql: str) -> str:
    """Rewrite ``$1`` placeholders as SQLite's numbered ``?1``."""
    return _PLACEHOLDER.sub(r"?\1", sql)


def _wrap(exc: BaseException) -> DatabaseError:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(str(exc))
    return DatabaseError(f"SQLite: {exc}")


def _errors() -> AbstractContextManager[None]:
    return driver_errors((sqlite3.Error,), _wrap)


class _Conn(Executor):
    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        with _errors():
            cur = await self._conn.execute(to_sqlite(sql), args)
            count = cur.rowcount
            await cur.close()
            return count

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        with _errors():
            await self._conn.executemany(to_sqlite(sql), [tuple(a) for a in args])

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _errors():
            async with self._conn.execute(to_sqlite(sql), args) as cur:
                rows = await cur.fetchall()
                names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]


class SQLiteDatabase(Database):
    """SQLite through aiosqlite.  ``url`` is ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``
    or ``sqlite://:memory:``."""

    dialect: Dialect = "sqlite"

    def __init__(self, url: str, conn: aiosqlite.Connection) -> None:
        self.url = url
        self._conn = conn
        self._exec = _Conn(conn)
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str) -> SQLiteDatabase:
        path = sqlite_path(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # SQLite gives the -wal and -shm files the mode of the database file.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            private_files(path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        if path != ":memory:":
            private_files(path)
        # NORMAL in WAL mode is durable against process crashes (kill -9); FULL adds power loss.
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=10000")
        return cls(url, conn)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            return await self._exec.execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        async with self._lock, self._tx():
            await self._exec.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._lock:
            return await self._exec.fetch(sql, *args)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Executor]:
        with _errors():
            await self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._exec
        except BaseException:
            await self._conn.execute("ROLLBACK")
            raise
        else:
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._conn.execute("ROLLBACK")
                raise _wrap(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._lock, self._tx() as tx:
            yield tx

    async def ping(self) -> None:
        await self.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._conn.close()


def private_files(path: str) -> None:
    """Mode 0600 for the database file and whichever of its ``-wal`` / ``-shm`` files exist."""
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


def sqlite_path(url: str) -> str:
    """The file path in a ``sqlite://`` URL."""
    rest = url.removeprefix("sqlite://")
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/") or rest == "/":
        raise DatabaseError(f"bad SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db")
    return rest[1:]
