"""uvicorn's h11 protocol, answering requests it cannot parse with the service's JSON error shape.

uvicorn refuses a malformed request (or one whose request line and headers pass
:data:`~speakerverify.service.limits.MAX_HEADER_BYTES` while still arriving) itself, before the
app sees it, with a plain-text 400. This subclass
overrides only that answer (``send_400_response``) so every answer of the service is
``{"error": "..."}``; ``speakerverify serve`` runs uvicorn with it (:func:`server_config`).
"""

from __future__ import annotations

import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from speakerverify.service.limits import MAX_HEADER_BYTES

MESSAGE = f"invalid HTTP request: malformed, or its headers are over {MAX_HEADER_BYTES // 1024} KB"


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": MESSAGE}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=body), h11.EndOfMessage()):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """How ``speakerverify serve`` runs uvicorn: this protocol, and uvicorn's own access log off
    (the service's, ``speakerverify.access``, is structured and names the key)."""
    return uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False, http=JsonErrorH11Protocol,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES)
