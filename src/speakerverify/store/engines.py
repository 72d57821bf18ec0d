"""Which engine a store location means: :func:`open_database`."""

from __future__ import annotations

import os

from speakerverify.store.db import BUSY_TIMEOUT_S, Database, SqliteDatabase, default_store_path, is_postgres_url


def open_database(location: str | os.PathLike | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Database:
    """The store's database at ``location`` (default :func:`default_store_path`): PostgreSQL for
    a ``postgresql://`` URL, else a SQLite file."""
    if location is None:
        location = default_store_path()
    if is_postgres_url(location):
        from speakerverify.store.postgres import PostgresDatabase  # psycopg only when asked for

        return PostgresDatabase(str(location), busy_timeout_s)
    return SqliteDatabase(location, busy_timeout_s)
