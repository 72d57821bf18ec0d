"""Which store errors mean "busy, try again": the service answers them 409 with ``Retry-After``.

One function, :func:`store_busy`, so the service boundary has one place to re-point when the store
changes how it reports contention: a ``StoreBusy`` error class where :mod:`speakerverify.errors`
has one, SQLite's own "database is locked/busy", and the store's "enrolled concurrently by another
writer" (a :class:`~speakerverify.errors.DataError` today).
"""

from __future__ import annotations

import sqlite3

from speakerverify import errors

#: Seconds a client is asked to wait before retrying a busy store.
RETRY_AFTER_S = 1
_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")
_CONCURRENT = "concurrently by another writer"


def store_busy(exc: BaseException) -> bool:
    busy_class = getattr(errors, "StoreBusy", None)
    if busy_class is not None and isinstance(exc, busy_class):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return any(s in str(exc) for s in _SQLITE_BUSY)
    return isinstance(exc, errors.DataError) and _CONCURRENT in str(exc)
