"""One async storage layer with two back-ends: SQLite (default, WAL) and PostgreSQL (asyncpg).

Queries are written once, with PostgreSQL-style numbered placeholders (``$1``, ``$2``...); the
SQLite back-end rewrites them.  Rows come back as plain ``dict`` objects on both back-ends.

Portable column conventions used by every schema module:

* times: ``TEXT`` ISO-8601 UTC (``2026-11-23T06:10:00.123456+00:00``) or ``{bigint}`` unix milliseconds;
* JSON: ``TEXT``;  booleans: ``INTEGER`` 0/1;  binary: ``{blob}``;  floats: ``{float}``;
* surrogate keys: ``{pk}`` (an auto-incrementing integer primary key).
"""

from storage.base import Database, DatabaseError, Executor, IntegrityError, Row
from storage.connect import open_database
from storage.migrate import Migration, migrate

__all__ = [
    "Database",
    "DatabaseError",
    "Executor",
    "IntegrityError",
    "Migration",
    "Row",
    "migrate",
    "open_database",
]
