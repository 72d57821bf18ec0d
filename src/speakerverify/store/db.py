"""The store's database: the engine interface, and the SQLite engine (schema, migrations,
per-thread connections and transactions).

Two engines share one interface (:class:`Database`): :class:`SqliteDatabase` here (a file, the
zero-set-up default) and :class:`~speakerverify.store.postgres.PostgresDatabase` (a server, for
several service replicas). :func:`~speakerverify.store.engines.open_database` picks one from the location: a
``postgresql://`` URL is PostgreSQL, anything else a SQLite file. Every SQL statement that shapes
the database (schema, pragmas, migrations, erasure, the meta upsert) lives in its engine's module;
the store's queries (:mod:`.speaker_store`, :mod:`.keys`, :mod:`.audit`) are written once, with
``?`` placeholders, which the PostgreSQL engine translates.

Safety: the database runs in WAL mode with ``synchronous=FULL``; every change is one
:meth:`Database.transaction`, so a crash or ``kill -9`` at any moment loses no earlier change and
never leaves a half-written speaker. Each transaction bumps the ``generation`` meta value, which
tells readers (in this process or another) that the gallery changed (audit records of reads do
not: nothing readers cache changed).

Erasure: ``secure_delete`` is on for every connection, so SQLite overwrites deleted content with
zeros in the database file; a transaction that deletes (``erase=True``) then checkpoints the WAL
into the file and truncates it, so no copy of the old pages is left in ``-wal`` either.

Access: a new store file is created 0600 (SQLite gives its ``-wal``, ``-shm`` and ``-journal``
the database file's mode) and new folders 0700.

Concurrency: writers take the write lock at ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout_s``
for it; when it cannot be had in time, :class:`~speakerverify.errors.StoreBusy` is raised.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from speakerverify.errors import DataError, SpeakerVerifyError, StoreBusy

#: 1: speakers, clips, api_keys, meta. 2: + audit, and the ``store_id`` meta value.
SCHEMA_VERSION = 2
T = TypeVar("T")
BUSY_TIMEOUT_S = 30.0
FILE_MODE = 0o600
FOLDER_MODE = 0o700
#: Deleted content is overwritten with zeros (a module value so a test can show what OFF leaves).
SECURE_DELETE = "ON"

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
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    speaker TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
"""


_URL = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)


def is_postgres_url(location: object) -> bool:
    """A ``postgresql://`` (or ``postgres://``) URL: the store is on a PostgreSQL server."""
    return isinstance(location, str) and bool(_URL.match(location))


def default_store_path() -> Path | str:
    """``$SPEAKERVERIFY_STORE`` (a path, or a ``postgresql://`` URL), else
    ``~/.local/share/speakerverify/speakers.db``."""
    env = os.environ.get("SPEAKERVERIFY_STORE")
    if env:
        return env if is_postgres_url(env) else Path(env).expanduser()
    return Path.home() / ".local" / "share" / "speakerverify" / "speakers.db"


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parents, each new one 0700 (existing ones are left)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue
        os.chmod(d, FOLDER_MODE)  # mkdir's mode is filtered by the umask


def _create_private_file(path: Path) -> None:
    """An empty new store file, 0600 (SQLite creates -wal/-shm/-journal with the same mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, FILE_MODE)


class Database:
    """What the store needs of an engine. ``path``: how messages name the store (a file, or a
    URL without its password); connections are per thread; ``transaction()`` is one write
    transaction that serialises writers and bumps the ``generation``; ``snapshot()`` one
    consistent read; ``meta()`` / ``put_meta()`` the store's key-value settings."""

    path: Path | str
    engine: str
    busy_timeout_s: float
    #: The engine's unique-constraint error (a key name taken).
    IntegrityError: type[Exception] = Exception

    def connection(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Close this thread's connection (engines keep one per thread in ``self._local``)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def transaction(self, bump: bool = True, erase: bool = False) -> Any:
        raise NotImplementedError

    def snapshot(self) -> Any:
        raise NotImplementedError

    def erase_deleted(self) -> None:
        """Make deleted rows unrecoverable as far as the engine allows (see docs/security.md)."""
        raise NotImplementedError

    def quick_check(self) -> list[str]:
        raise NotImplementedError

    def put_meta(self, con: Any, key: str, value: str, replace: bool = True) -> None:
        """Set meta ``key`` inside the caller's transaction (``replace=False``: only if unset)."""
        raise NotImplementedError

    def reset_ids(self, con: Any, tables: tuple[str, ...]) -> None:
        """After rows were inserted with explicit ids (a migration), make the next generated id
        of each table follow the largest one. SQLite's ``INTEGER PRIMARY KEY`` already does."""

    def translate(self, exc: BaseException) -> SpeakerVerifyError | None:
        """The one-line error for an engine error (busy, damaged, unreachable), or None."""
        raise NotImplementedError

    def listen(self, on_change: Callable[[str], None], stop: threading.Event | None = None) -> Any:
        """Call ``on_change(generation)`` when another process changes the store, where the
        engine can announce it (PostgreSQL's LISTEN/NOTIFY); None where it cannot (SQLite: each
        search's generation check is the refresh)."""
        return None

    def meta(self, key: str) -> str | None:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def check_version(self, found: int) -> bool:
        """Refuse a newer schema with one line; True when the store needs migrating."""
        if found > SCHEMA_VERSION:
            raise DataError(f"{self.path}: store schema {found} is newer than this speakerverify "
                            f"understands ({SCHEMA_VERSION}); upgrade speakerverify")
        return found < SCHEMA_VERSION or self.meta("store_id") is None

    @staticmethod
    def next_id(con: Any, table: str) -> int:
        """The id the next row of ``table`` gets; inside a write transaction (writers are
        serialised), so encrypted blobs can be bound to their row before it is inserted."""
        assert table in ("speakers", "clips")
        return int(con.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0])


class SqliteDatabase(Database):
    """One SQLite file; a connection per thread, created (with the schema) on first use."""

    engine = "sqlite"
    IntegrityError = sqlite3.IntegrityError

    def __init__(self, path: str | os.PathLike | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path).expanduser() if path is not None else Path(default_store_path())
        self.busy_timeout_s = float(busy_timeout_s)
        self._local = threading.local()
        self._open()

    def damaged(self, exc: sqlite3.DatabaseError) -> DataError:
        """The one-line error for a store SQLite cannot read."""
        return DataError(f"{self.path}: speaker store is damaged or not a speaker store ({exc}); "
                         f"`speakerverify store check --store {self.path}` lists the problems")

    def _open(self) -> None:
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a directory, not a speaker store")
        try:
            make_private_folder(self.path.parent)
            _create_private_file(self.path)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot create the store ({exc.strerror})") from None
        con = self.connection()
        try:
            version = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: not a speaker store ({exc})") from None
        if self.check_version(int(version[0]) if version is not None else SCHEMA_VERSION):
            self._migrate(con)

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Bring an older store to this schema: every change is additive (new tables and meta
        values), so older stores keep their data and layout."""
        try:
            with self.transaction(bump=False) as c:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
                c.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (secrets.token_hex(16),))
        except sqlite3.DatabaseError as exc:
            raise self.damaged(exc) from None

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: reads see the latest committed state)."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            return con
        try:
            con = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                  check_same_thread=True)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute(f"PRAGMA secure_delete={SECURE_DELETE}")
            con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
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
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (secrets.token_hex(16),))
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: cannot open speaker store ({exc})") from None
        self._local.con = con
        return con

    @contextmanager
    def transaction(self, bump: bool = True, erase: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``bump``: bump the generation so readers reload the gallery
        (off for audit records of reads); ``erase``: it deletes or overwrites biometric data, so
        the WAL is checkpointed into the file and truncated after the commit."""
        con = self.connection()
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy(f"{self.path}: store is busy (another writer held it for over "
                                f"{self.busy_timeout_s:g} s); try again", retry_after=1) from None
            raise DataError(f"{self.path}: store is read-only or unusable ({exc})") from None
        try:
            yield con
            if bump:
                con.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if erase:
            self.erase_deleted()

    def erase_deleted(self) -> None:
        self.truncate_wal()

    def put_meta(self, con: Any, key: str, value: str, replace: bool = True) -> None:
        con.execute(f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO meta VALUES (?, ?)", (key, value))

    def translate(self, exc: BaseException) -> SpeakerVerifyError | None:
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            return StoreBusy(f"{self.path}: store is busy; try again", retry_after=1)
        if isinstance(exc, sqlite3.DatabaseError):
            return self.damaged(exc)
        return None

    def truncate_wal(self) -> None:
        """Copy the WAL into the database file and truncate it to zero bytes (a reader still in
        a transaction elsewhere can hold back part of it: it is then truncated by the next erase
        or checkpoint)."""
        self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: the reads inside see one consistent state."""
        con = self.connection()
        con.execute("BEGIN")
        try:
            yield con
        finally:
            con.execute("COMMIT")

    def quick_check(self) -> list[str]:
        """SQLite's page-level check of the whole file (``integrity_check``): problems, or []."""
        try:
            rows = self.connection().execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as exc:
            return [f"SQLite cannot read the file ({exc})"]
        return [str(r[0]) for r in rows if r[0] != "ok"]


def guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """For methods of objects with a ``db`` (or functions taking one first): an engine error
    becomes one line naming the store (:meth:`Database.translate`: damaged, unreachable), a lock
    not had in time :class:`~speakerverify.errors.StoreBusy`."""

    @functools.wraps(fn)
    def wrapper(owner: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(owner, *args, **kwargs)
        except SpeakerVerifyError:
            raise
        except Exception as exc:
            mapped = owner.db.translate(exc)
            if mapped is None:
                raise
            raise mapped from None

    return wrapper
