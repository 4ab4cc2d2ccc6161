"""Connecting to a catalog database: where it lives, SQLite's settings, and what a refused
statement says."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import DBAPIError

FILENAME = "catalog.db"


def database_url(index_dir: Path, override: str | None = None) -> str:
    return override or f"sqlite:///{(index_dir / FILENAME).resolve()}"


def sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers keep reading while the indexer writes
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
    cursor.close()


def reason(exc: DBAPIError) -> str:
    """The database's own first line, without SQLAlchemy's statement and link."""
    if exc.orig is None:
        return type(exc).__name__
    return (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]

