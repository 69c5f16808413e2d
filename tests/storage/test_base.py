"""The storage layer behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import stat
import types
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage import Database, IntegrityError, Migration, migrate, open_database
from storage.base import DatabaseError
from tests.conftest import PG_URL, _drop_schema
from tests.dbproxy import DbProxy


async def test_placeholders_rows_and_counts(db: Database) -> None:
    await db.execute("CREATE TABLE t (id {pk}, name TEXT NOT NULL, n INTEGER)".replace(
        "{pk}", "INTEGER PRIMARY KEY AUTOINCREMENT" if db.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"))
    await db.executemany("INSERT INTO t (name, n) VALUES ($1, $2)", [("a", 1), ("b", 2), ("c", 3)])
    changed = await db.execute("UPDATE t SET n = n + $1 WHERE n >= $2", 10, 2)
    assert changed == 2
    rows = await db.fetch("SELECT name, n FROM t ORDER BY name")
    assert rows == [{"name": "a", "n": 1}, {"name": "b", "n": 12}, {"name": "c", "n": 13}]
    assert await db.fetchval("SELECT COUNT(*) FROM t WHERE name = $1", "b") == 1
    assert await db.fetchrow("SELECT * FROM t WHERE name = $1", "zzz") is None
    new_id = await db.fetchval("INSERT INTO t (name, n) VALUES ($1, $2) RETURNING id", "d", 4)
    assert isinstance(new_id, int)
    streamed = [r["name"] async for r in db.stream("SELECT name FROM t ORDER BY id", batch=2)]
    assert streamed == ["a", "b", "c", "d"]


async def test_transaction_rolls_back_on_error(db: Database) -> None:
    await db.execute("CREATE TABLE acct (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    await db.execute("INSERT INTO acct VALUES ($1, $2)", "x", 1)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("UPDATE acct SET v = 99 WHERE k = $1", "x")
            raise RuntimeError("boom")
    assert await db.fetchval("SELECT v FROM acct WHERE k = $1", "x") == 1


async def test_integrity_error_is_the_same_on_both(db: Database) -> None:
    await db.execute("CREATE TABLE u (k TEXT PRIMARY KEY)")
    await db.execute("INSERT INTO u VALUES ($1)", "k")
    with pytest.raises(IntegrityError):
        await db.execute("INSERT INTO u VALUES ($1)", "k")


async def test_concurrent_transactions_do_not_lose_updates(db: Database) -> None:
    await db.execute("CREATE TABLE c (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    await db.execute("INSERT INTO c VALUES ('n', 0)")
    lock = " FOR UPDATE" if db.dialect == "postgresql" else ""

    async def bump() -> None:
        async with db.transaction() as tx:
            v = await tx.fetchval(f"SELECT v FROM c WHERE k = 'n'{lock}")
            await asyncio.sleep(0)
            await tx.execute("UPDATE c SET v = $1 WHERE k = 'n'", v + 1)

    await asyncio.gather(*(bump() for _ in range(20)))
    assert await db.fetchval("SELECT v FROM c WHERE k = 'n'") == 20


async def test_migrations_apply_once_and_in_order(db_url: str) -> None:
    mod = types.SimpleNamespace(
        COMPONENT="zz_test",
        ORDER=1,
        MIGRATIONS=[
            Migration(1, "CREATE TABLE zz (id {pk}, data {blob}, f {float}, big {bigint})"),
            Migration(2, "ALTER TABLE zz ADD COLUMN note TEXT; CREATE INDEX zz_note ON zz(note)"),
        ],
    )
    database = await open_database(db_url)
    try:
        assert await migrate(database, [mod]) == [("zz_test", 1), ("zz_test", 2)]  # type: ignore[list-item]
        assert await migrate(database, [mod]) == []  # type: ignore[list-item]
        await database.execute("INSERT INTO zz (data, f, big, note) VALUES ($1, $2, $3, $4)",
                               b"\x00\xff", 0.5, 2**40, "n")
        row = await database.fetchrow("SELECT data, f, big, note FROM zz")
        assert row is not None and bytes(row["data"]) == b"\x00\xff" and row["big"] == 2**40
    finally:
        await database.close()


async def test_real_schema_migrates_on_both(db: Database) -> None:
    components = {r["component"] for r in await db.fetch("SELECT component FROM schema_migrations")}
    assert "core" in components


async def test_unsupported_scheme_is_refused() -> None:
    with pytest.raises(DatabaseError, match="use sqlite:/// or postgresql://"):
        await open_database("mysql://localhost/x")


async def test_postgres_connection_dropped_is_a_database_error_everywhere() -> None:
    """The network to PostgreSQL cut (idle and mid-query): every operation raises DatabaseError, the one
    error the web layer answers 503 + Retry-After, never an asyncpg or socket error (a 500)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    proxy = DbProxy(PG_URL)
    await proxy.start()
    db = await open_database(f"{proxy.url}?schema={schema}")

    async def in_transaction() -> None:
        async with db.transaction() as tx:
            await tx.execute("SELECT 1")

    async def dropped_inside_a_transaction() -> None:
        async with db.transaction() as tx:
            await tx.execute("SELECT 1")
            await proxy.drop()
            await tx.execute("SELECT 1")

    async def dropped_mid_query() -> None:
        query = asyncio.create_task(db.execute("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.3)  # the query is on the server (it sleeps 5 s): cut it off
        await proxy.drop()
        await query

    operations: dict[str, Callable[[], Awaitable[Any]]] = {
        "execute": lambda: db.execute("SELECT 1"),
        "fetch": lambda: db.fetch("SELECT 1"),
        "fetchval": lambda: db.fetchval("SELECT 1"),
        "executemany": lambda: db.executemany("SELECT $1::int", [(1,)]),
        "transaction": in_transaction,
        "ping": db.ping,
    }
    try:
        for operation in operations.values():
            await proxy.restore()
            await db.fetch("SELECT 1")  # a pooled connection, then the network goes
            await proxy.drop()
            with pytest.raises(DatabaseError):
                await operation()
        for during in (dropped_inside_a_transaction, dropped_mid_query):
            await proxy.restore()
            await db.fetch("SELECT 1")
            with pytest.raises(DatabaseError):
                await during()
        await proxy.restore()
        assert await db.fetchval("SELECT 1") == 1  # and it comes back by itself
    finally:
        await proxy.restore()
        await db.close()
        await proxy.close()
        await _drop_schema(schema)


async def test_sqlite_files_are_private(tmp_path: Path) -> None:
    """The database and its -wal / -shm files are 0600 (an older 0644 file is tightened), a folder
    made for it 0700."""
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    old.chmod(0o644)
    for path in (tmp_path / "new" / "counter.db", old):
        db = await open_database(f"sqlite:///{path}")
        try:
            await migrate(db)
            await db.execute("INSERT INTO schema_migrations VALUES ('x', 1, 'now')")
            files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
        finally:
            await db.close()
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
