"""Copy a whole speaker store into another, empty one, on either engine: ``store migrate SRC DST``.

SQLite to PostgreSQL is the usual move (one machine to several replicas), but any pair works.
The copy is of rows, not of meaning: every table is copied with its ids, and the meta values
(``store_id``, the model, keep-audio, the encryption key check) with them. Encrypted blobs are
bound to the store's ``store_id``, table, column and row id (:mod:`.crypto`), so keeping those
makes them readable in the new store under the same key, and migrating needs no key: ciphertext
is copied as it is, never decrypted.

Safety: the source is read in one consistent snapshot; the destination is written in one
transaction holding its write lock, so a crash or ``kill -9`` mid-copy leaves it as it was
(empty), and the migration can simply be run again. The destination must be empty (no speakers,
clips, keys or audit records): a migration never merges or overwrites. After the commit both
stores are read back and every copied row compared by digest; the destination's audit log gets
one ``store-migrate`` record naming the source.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speakerverify.errors import DataError
from speakerverify.store import audit as audit_log
from speakerverify.store.db import Database, is_postgres_url
from speakerverify.store.engines import open_database

#: Copied in this order (clips refer to speakers).
TABLES = ("speakers", "clips", "api_keys", "audit")
#: Meta values each store keeps for itself: its schema version and change counter.
OWN_META = ("schema", "generation")
BATCH = 256


@dataclass
class MigrateResult:
    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination, "rows": dict(self.rows)}


def _rows(con: Any, table: str, last_id: int | None = None) -> Iterator[tuple[list[str], tuple]]:
    """Rows of ``table`` in id order, with their column names (up to ``last_id`` when given)."""
    where = "" if last_id is None else f" WHERE id <= {int(last_id)}"
    query = f"SELECT * FROM {table}{where} ORDER BY id"
    # An sqlite3 cursor steps through its result as it is fetched; PostgreSQL's needs a server-side
    # cursor for that (PgConnection.stream), or the whole table would be held in memory.
    cur = con.stream(query, BATCH) if hasattr(con, "stream") else con.execute(query)
    try:
        names = [d[0] for d in cur.description]
        while batch := cur.fetchmany(BATCH):
            for row in batch:
                yield names, tuple(row)
    finally:
        cur.close()


def _value(v: Any) -> bytes:
    """One column value as bytes for the digest, the same on both engines."""
    if v is None:
        return b"\x00N"
    if isinstance(v, bytes | bytearray | memoryview):
        return b"\x00B" + bytes(v)
    if isinstance(v, float):
        return b"\x00F" + v.hex().encode()
    return b"\x00S" + str(v).encode()


def _digest(con: Any, table: str, last_id: int | None = None) -> tuple[int, str]:
    """How many rows ``table`` has (up to ``last_id``) and a SHA-256 over all of them."""
    h = hashlib.sha256()
    n = 0
    for names, row in _rows(con, table, last_id):
        for name, v in sorted(zip(names, row, strict=True)):
            h.update(name.encode() + _value(v))
        h.update(b"\x00R")
        n += 1
    return n, h.hexdigest()


def _held(con: Any) -> dict[str, int]:
    return {t: int(con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}


def _open_source(location: str | os.PathLike) -> Database:
    if not is_postgres_url(location) and not Path(location).expanduser().is_file():
        raise DataError(f"{location}: no such speaker store (nothing to migrate)")
    return open_database(location)


def migrate(source: str | os.PathLike, destination: str | os.PathLike, actor: str | None = None,
            progress: Callable[[str, int], None] | None = None) -> MigrateResult:
    """Copy the store at ``source`` into the empty store at ``destination`` (created when it
    does not exist): see the module docstring. ``progress(table, rows)`` after each table."""
    src = _open_source(source)
    dst = open_database(destination)
    try:
        if src.engine == dst.engine and str(src.path) == str(dst.path):
            raise DataError(f"{dst.path}: source and destination are the same store")
        held = {t: n for t, n in _held(dst.connection()).items() if n}
        if held:
            what = ", ".join(f"{n} {t.replace('_', ' ')}" for t, n in held.items())
            raise DataError(f"{dst.path}: already holds {what}; migrate copies into an empty store only")
        result = MigrateResult(str(src.path), str(dst.path))
        with src.snapshot() as scon:
            meta = [(k, v) for k, v in scon.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
                    if k not in OWN_META]
            with dst.transaction(erase=False) as dcon:
                for table in TABLES:
                    n = 0
                    names: list[str] | None = None
                    batch: list[tuple] = []
                    for names, row in _rows(scon, table):
                        batch.append(row)
                        n += 1
                        if len(batch) == BATCH:
                            _insert(dcon, table, names, batch)
                            batch = []
                    if batch and names is not None:
                        _insert(dcon, table, names, batch)
                    result.rows[table] = n
                    if progress is not None:
                        progress(table, n)
                dst.reset_ids(dcon, ("api_keys", "audit"))
                for k, v in meta:
                    dst.put_meta(dcon, str(k), str(v))
                rows = ", ".join(f"{n} {t}" for t, n in result.rows.items())
                audit_log.record(dcon, actor or f"local:{audit_log.os_user()}", "store-migrate", None,
                                 f"from {src.path} ({rows})")
            last_audit = int(scon.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()[0])
            _compare(src, scon, dst, last_audit, meta)
        return result
    finally:
        src.close()
        dst.close()


def _insert(con: Any, table: str, names: list[str], rows: list[tuple]) -> None:
    cols = ", ".join(names)
    marks = ", ".join("?" * len(names))
    con.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)


def _compare(src: Database, scon: Any, dst: Database, last_audit: int, meta: list[tuple[str, str]]) -> None:
    """Read both stores back: every copied row and meta value must be the same."""
    with dst.snapshot() as dcon:
        for table in TABLES:
            limit = last_audit if table == "audit" else None
            if _digest(scon, table, limit) != _digest(dcon, table, limit):
                raise DataError(f"{dst.path}: the copy of table {table} differs from {src.path}'s; "
                                "do not use it (drop and recreate it, then migrate again)")
        copied = dict(dcon.execute("SELECT key, value FROM meta").fetchall())
        if any(copied.get(k) != v for k, v in meta):
            raise DataError(f"{dst.path}: the copied settings differ from {src.path}'s")
