"""Security headers on every response of the service (API, web page, static files, API docs).

The web page keeps its script and style in static files, so its Content-Security-Policy needs no
``'unsafe-inline'``: scripts, styles, fetches and worklets only from this server; the recorded clip
plays from a ``blob:`` URL. The Swagger UI page at ``/docs`` starts from one inline script (its
configuration, written by FastAPI) and sets inline styles, so it alone gets a policy allowing
those. Framing is refused everywhere (``X-Frame-Options: DENY``, ``frame-ancestors 'none'``).

A pure ASGI middleware (starlette has no security-headers middleware); headers the app set itself
are left as they are.
"""

from __future__ import annotations

from typing import Any

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")
COMMON = {
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}
#: Paths served with :data:`DOCS_CSP`; every other response gets :data:`PAGE_CSP`.
DOCS_PATHS = frozenset({"/docs"})


def security_headers(path: str) -> dict[bytes, bytes]:
    csp = DOCS_CSP if path in DOCS_PATHS else PAGE_CSP
    return {**COMMON, b"content-security-policy": csp.encode()}


class SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""))

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
