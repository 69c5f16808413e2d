"""PostgreSQL back-end through an asyncpg pool."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from storage.base import Database, DatabaseError, Dialect, Executor, IntegrityError, Row, driver_errors

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: Everything asyncpg raises when the server, the network or the connection fails, mid-request too:
#: server errors, a closed or broken connection (``InterfaceError``, ``InternalClientError`` such as
#: "not connected"), a refused or reset socket and timeouts (``OSError``, ``TimeoutError``).  All of
#: them become :class:`DatabaseError` (answered ``503`` with ``Retry-After`` by the web layer).
_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


def _wrap(exc: BaseException) -> DatabaseError:
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(str(exc))
    return DatabaseError(f"PostgreSQL: {exc}")


def _errors() -> AbstractContextManager[None]:
    return driver_errors(_FAILURES, _wrap)


class _Conn(Executor):
    dialect: Dialect = "postgresql"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        with _errors():
            status: str = await self._conn.execute(sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        with _errors():
            await self._conn.executemany(sql, [tuple(a) for a in args])

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _errors():
            rows = await self._conn.fetch(sql, *args)
        return [dict(r) for r in rows]


class PostgresDatabase(Database):
    """PostgreSQL.  ``url`` is a libpq URL; the extra query parameter ``schema=NAME`` puts every table
    in that schema (created if missing), which the test suite uses to isolate runs."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, pool: Any) -> None:
        self.url = url
        self._pool = pool

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresDatabase:
        dsn, schema = split_schema(url)
        settings = {"search_path": schema} if schema else {}
        try:
            if schema:
                conn = await asyncpg.connect(dsn)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                finally:
                    await conn.close()
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, server_settings=settings
            )
        except _FAILURES as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
        return cls(url, pool)

    async def execute(self, sql: str, *args: Any) -> int:
        with _errors():
            async with self._pool.acquire() as conn:
                return await _Conn(conn).execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _errors():
            async with self._pool.acquire() as conn:
                return await _Conn(conn).fetch(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        with _errors():
            async with self._pool.acquire() as conn, conn.transaction():
                yield _Conn(conn)

    async def ping(self) -> None:
        await self.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()


def split_schema(url: str) -> tuple[str, str | None]:
    """Take the ``schema`` query parameter out of a PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise DatabaseError(f"bad schema name {schema!r} in the database URL: use [a-z_][a-z0-9_]*")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
