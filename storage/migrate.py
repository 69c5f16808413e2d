"""Versioned schema migrations, applied at start.

Each module in :mod:`storage.schema` owns the tables of one component and declares::

    COMPONENT = "audit"          # unique name
    ORDER = 20                   # components are migrated in this order (core is 0)
    MIGRATIONS = [Migration(1, "CREATE TABLE ..."), Migration(2, "ALTER TABLE ...")]

Versions of a component only ever grow; an applied migration is never edited.  SQL may hold several
statements separated by ``;`` and the dialect tokens ``{pk}``, ``{blob}``, ``{float}``, ``{bigint}``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType

from storage.base import Database, DatabaseError, Dialect

_TOKENS: dict[Dialect, dict[str, str]] = {
    "sqlite": {
        "{pk}": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "{blob}": "BLOB",
        "{float}": "REAL",
        "{bigint}": "INTEGER",
    },
    "postgresql": {
        "{pk}": "BIGSERIAL PRIMARY KEY",
        "{blob}": "BYTEA",
        "{float}": "DOUBLE PRECISION",
        "{bigint}": "BIGINT",
    },
}


@dataclass(frozen=True)
class Migration:
    """One schema version of a component."""

    version: int
    sql: str

    def statements(self, dialect: Dialect) -> list[str]:
        """The SQL statements for ``dialect``, tokens replaced."""
        sql = self.sql
        for token, value in _TOKENS[dialect].items():
            sql = sql.replace(token, value)
        return [s.strip() for s in sql.split(";") if s.strip()]


def schema_modules() -> list[ModuleType]:
    """Every schema module, in migration order."""
    import storage.schema as pkg

    modules = [
        importlib.import_module(f"{pkg.__name__}.{info.name}")
        for info in pkgutil.iter_modules(pkg.__path__)
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.COMPONENT))


_LOCK_KEY = 0x52435452  # "RCTR": one PostgreSQL advisory lock so two nodes never migrate at once


async def migrate(db: Database, modules: list[ModuleType] | None = None) -> list[tuple[str, int]]:
    """Apply every pending migration; return the ``(component, version)`` pairs applied."""
    modules = schema_modules() if modules is None else modules
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,"
        " PRIMARY KEY (component, version))"
    )
    applied: list[tuple[str, int]] = []
    async with db.transaction() as tx:
        if db.dialect == "postgresql":
            await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        done = {
            (r["component"], r["version"])
            for r in await tx.fetch("SELECT component, version FROM schema_migrations")
        }
        for module in modules:
            component: str = module.COMPONENT
            versions = [m.version for m in module.MIGRATIONS]
            if versions != sorted(set(versions)):
                raise DatabaseError(f"schema {component}: migration versions must be unique and ascending")
            for migration in module.MIGRATIONS:
                if (component, migration.version) in done:
                    continue
                for statement in migration.statements(db.dialect):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (component, version, applied_at)"
                    " VALUES ($1, $2, CURRENT_TIMESTAMP)",
                    component,
                    migration.version,
                )
                applied.append((component, migration.version))
    return applied
