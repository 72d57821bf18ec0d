"""The service's structured access log: one JSON line per HTTP request on ``speakerverify.access``.

Each line holds ``time`` (when it arrived, UTC, ISO 8601), ``method``, ``path`` (never the query
string, which could carry secrets), ``status``, ``duration_ms``, ``client`` (address), ``key`` (the API key's *name*
once the key was checked, never the key), ``request_id`` (the caller's ``X-Request-ID`` when it is
short and printable, else a new one; echoed in the response), ``bytes_in`` and ``bytes_out``
(body bytes). Never audio, never headers.

A pure ASGI middleware rather than starlette's ``BaseHTTPMiddleware``, which would buffer bodies
and hide the bytes actually sent. ``speakerverify serve`` sends the lines to stderr or
``--access-log FILE`` (:func:`configure`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from speakerverify.errors import DataError

log = logging.getLogger("speakerverify.access")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Where the key dependency leaves the checked key's name (``scope["state"]``, i.e. ``request.state``).
KEY_NAME = "key_name"


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class AccessLog:
    def __init__(self, app: Any, logger: logging.Logger = log) -> None:
        self.app = app
        self.log = logger

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, t0 = datetime.now(UTC), time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given and REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        seen = {"status": 500, "in": 0, "out": 0}

        async def counting_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                seen["in"] += len(message.get("body", b""))
            return message

        async def logging_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, logging_send)
        finally:
            client = scope.get("client")
            self.log.info(json.dumps({
                "time": started.isoformat(timespec="milliseconds"),
                "method": scope.get("method"), "path": scope.get("path"), "status": seen["status"],
                "duration_ms": round((time.perf_counter() - t0) * 1000, 1),
                "client": client[0] if client else None, "key": state.get(KEY_NAME),
                "request_id": request_id, "bytes_in": seen["in"], "bytes_out": seen["out"],
            }, ensure_ascii=False))


def configure(target: str | Path | None) -> logging.Handler | None:
    """Send the access log to ``target``: ``"-"`` for stderr, a file path (appended), ``None`` for
    nowhere. The lines are the JSON alone (no level or logger prefix)."""
    if target is None:
        log.disabled = True
        return None
    try:
        handler: logging.Handler = (logging.StreamHandler(sys.stderr) if str(target) == "-"
                                    else logging.FileHandler(target, encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{target}: cannot write the access log ({exc.strerror or exc})") from None
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.disabled = False
    return handler
