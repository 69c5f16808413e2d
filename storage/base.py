"""The storage interface shared by both back-ends."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, Literal

Row = dict[str, Any]
Dialect = Literal["sqlite", "postgresql"]


class DatabaseError(Exception):
    """A storage operation failed; the message says which and why."""


class IntegrityError(DatabaseError):
    """A uniqueness or foreign-key constraint was violated (the same on both back-ends)."""


@contextmanager
def driver_errors(
    failures: tuple[type[BaseException], ...], wrap: Callable[[BaseException], DatabaseError]
) -> Iterator[None]:
    """A driver's ``failures`` raised inside become ``wrap(exc)``; a :class:`DatabaseError` passes as it is."""
    try:
        yield
    except DatabaseError:
        raise
    except failures as exc:
        raise wrap(exc) from exc


class Executor(abc.ABC):
    """Something SQL can run on: the database itself (autocommit) or an open transaction."""

    dialect: Dialect

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per argument tuple."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run a query; return every row."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """Run a query; return its first row or ``None``."""
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Run a query; return the first column of its first row, or ``None``."""
        row = await self.fetchrow(sql, *args)
        if row is None:
            return None
        return next(iter(row.values()))


class Database(Executor):
    """A connected database.  Statements on it autocommit; use :meth:`transaction` to group them."""

    url: str

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """Open a transaction: committed when the block ends, rolled back if it raises.

        On SQLite the transaction takes the write lock at once (``BEGIN IMMEDIATE``), so two
        transactions never interleave; on PostgreSQL use ``SELECT ... FOR UPDATE`` to serialise
        conflicting changes.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`DatabaseError` unless the database answers."""

    def stream(self, sql: str, *args: Any, batch: int = 1000) -> AsyncIterator[Row]:
        """Iterate over a large result in batches of ``batch`` rows (keyset paging is the caller's)."""
        return _stream(self, sql, args, batch)


async def _stream(db: Executor, sql: str, args: Sequence[Any], batch: int) -> AsyncIterator[Row]:
    offset = 0
    while True:
        rows = await db.fetch(f"{sql} LIMIT {int(batch)} OFFSET {int(offset)}", *args)
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        offset += batch
