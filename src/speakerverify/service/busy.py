"""Which store errors mean "busy, try again": the service answers them 409 with ``Retry-After``.

One function, :func:`store_busy`, so the service boundary has one place that knows how the store
reports contention: :class:`~speakerverify.errors.StoreBusy` (its write lock was not had in time),
and SQLite's own "database is locked/busy" should one escape a store call.
"""

from __future__ import annotations

import sqlite3

from speakerverify.errors import StoreBusy

#: Seconds a client is asked to wait before retrying a busy store, unless the error says.
RETRY_AFTER_S = 1
_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")


def store_busy(exc: BaseException) -> bool:
    if isinstance(exc, StoreBusy):
        return True
    return isinstance(exc, sqlite3.OperationalError) and any(s in str(exc) for s in _SQLITE_BUSY)


def retry_after_s(exc: BaseException) -> int:
    return max(1, int(getattr(exc, "retry_after", RETRY_AFTER_S)))
