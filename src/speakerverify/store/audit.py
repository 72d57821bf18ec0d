"""The audit log: who did what to which speaker, when, with what outcome (never audio or vectors).

Records live in the store's ``audit`` table. A change (enroll, remove, key-add, rekey...) is
recorded in the same transaction as the change itself, so the log and the data never disagree; a
read (verify, identify) is recorded in its own small transaction. ``actor`` is an API key's
*name* (``key:NAME``), or ``cli:USER`` / ``local:USER`` for the command line and the Python API,
never a key.
"""

from __future__ import annotations

import getpass
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from speakerverify.errors import SpeakerVerifyError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return f"uid{os.getuid()}"


def now_iso() -> str:
    """UTC, ISO 8601 with microseconds: sorts as text in time order."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_since(text: str, now: datetime | None = None) -> str:
    """``--since``: an ISO date or time (UTC unless it says otherwise) or a duration back from
    now (``90s``, ``30m``, ``12h``, ``7d``, ``2w``); the ISO time records are compared with."""
    m = _DURATION.match(text)
    if m:
        when = (now or datetime.now(UTC)) - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise SpeakerVerifyError(f"--since {text!r}: give an ISO time (2025-01-31 or 2025-01-31T12:00) "
                                     "or a duration (30m, 12h, 7d)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def record(con: Any, actor: str, action: str, speaker: str | None, outcome: str) -> None:
    """Add one record inside the caller's transaction."""
    con.execute("INSERT INTO audit (at, actor, action, speaker, outcome) VALUES (?, ?, ?, ?, ?)",
                (now_iso(), actor, action, speaker, outcome))


def events(con: Any, since: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Records at or after ``since`` (an ISO time from :func:`parse_since`), oldest first; the
    last ``limit`` of them when given."""
    rows = con.execute("SELECT at, actor, action, speaker, outcome FROM audit WHERE at >= ? ORDER BY id",
                       (since or "",)).fetchall()
    if limit is not None:
        rows = rows[-limit:] if limit > 0 else []
    return [{"when": r[0], "actor": r[1], "action": r[2], "speaker": r[3], "outcome": r[4]} for r in rows]
