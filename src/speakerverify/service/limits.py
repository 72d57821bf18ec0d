"""ASGI middleware: refuse request bodies over a size limit with 413 ``{"error": ...}``, and
headers over a size limit with 431.

A declared ``Content-Length`` over the limit is refused before any of the body is read. A body
without one (chunked) is counted as it streams in; once it passes the limit, reading stops and the
answer becomes 413 whatever the app would have said about the cut-off body.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    def _message(self) -> str:
        mb = self.max_bytes / (1024 * 1024)
        size = f"{mb:.1f} MB" if mb >= 0.1 else f"{self.max_bytes} bytes"
        return f"request body is larger than the {size} limit (--max-upload-mb)"

    async def _send_413(self, send: Any) -> None:
        body = json.dumps({"error": self._message()}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._send_413(send)
                    return
        state = {"received": 0, "too_large": False, "started": False}

        async def limited_receive() -> Message:
            if state["too_large"]:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["too_large"] = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["too_large"]:
                # The app answered the cut-off body somehow; answer 413 instead, once.
                if message["type"] == "http.response.start" and not state["started"]:
                    state["started"] = True
                    await self._send_413(send)
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not state["started"]:
                await self._send_413(send)
        except Exception:
            if state["too_large"]:
                if not state["started"]:
                    await self._send_413(send)
                return
            raise


#: Largest request line plus headers. uvicorn's h11 parser enforces it only on a request that
#: arrives in pieces (it answers 400 itself, see service.protocol); one that arrives whole, up to
#: asyncio's read size, is parsed, so :class:`HeaderSizeLimit` checks it again in the app.
MAX_HEADER_BYTES = 16 * 1024


class HeaderSizeLimit:
    """Refuse requests whose headers pass ``max_bytes`` with 431 ``{"error": ...}``."""

    def __init__(self, app: Any, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
            if size > self.max_bytes:
                body = json.dumps({"error": f"request headers are over the {self.max_bytes // 1024} KB limit"}).encode()
                await send({"type": "http.response.start", "status": 431,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
