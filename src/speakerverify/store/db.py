"""The store's database: schema, per-thread connections and write transactions (SQLite).

Safety: the database runs in WAL mode with ``synchronous=FULL``; every change is one
:meth:`Database.transaction`, so a crash or ``kill -9`` at any moment loses no earlier change and
never leaves a half-written speaker. Each transaction bumps the ``generation`` meta value, which
tells readers (in this process or another) that the gallery changed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from speakerverify.errors import DataError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS speakers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    n_clips INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY,
    speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    duration_s REAL NOT NULL,
    added REAL NOT NULL,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    audio BLOB
);
CREATE INDEX IF NOT EXISTS clips_speaker ON clips(speaker_id);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    admin INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


def default_store_path() -> Path:
    """``$SPEAKERVERIFY_STORE``, else ``~/.local/share/speakerverify/speakers.db``."""
    env = os.environ.get("SPEAKERVERIFY_STORE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "speakerverify" / "speakers.db"


class Database:
    """One SQLite file; a connection per thread, created (with the schema) on first use."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._local = threading.local()
        self._open()

    def _open(self) -> None:
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a directory, not a speaker store")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot create its folder ({exc.strerror})") from None
        con = self.connection()
        try:
            version = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: not a speaker store ({exc})") from None
        if version is not None and int(version[0]) > SCHEMA_VERSION:
            raise DataError(f"{self.path}: store schema {version[0]} is newer than this speakerverify "
                            f"understands ({SCHEMA_VERSION}); upgrade speakerverify")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: reads see the latest committed state)."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            return con
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            has_meta = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            if not has_meta:
                con.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            con.execute(statement)
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: cannot open speaker store ({exc})") from None
        self._local.con = con
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; bumps the generation so readers reload the gallery."""
        con = self.connection()
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise DataError(f"{self.path}: store is busy or read-only ({exc})") from None
        try:
            yield con
            con.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: the reads inside see one consistent state."""
        con = self.connection()
        con.execute("BEGIN")
        try:
            yield con
        finally:
            con.execute("COMMIT")

    def meta(self, key: str) -> str | None:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])
