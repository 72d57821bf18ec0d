"""The REST service: FastAPI app over a :class:`~speakerverify.verifier.Verifier` and a speaker store.

Routes (all JSON; errors are always ``{"error": "..."}``):

* ``GET /healthz`` -- liveness and model ident (no key needed);
* ``POST /v1/verify`` (files ``a``, ``b``) -- the keys of ``speakerverify verify --json``;
* ``POST /v1/embed`` (file ``file``) -- the embedding;
* ``GET /v1/speakers`` / ``POST /v1/speakers`` (``name``, files ``files``; admin) -- list / enroll;
* ``DELETE /v1/speakers/{name}`` (admin) -- remove;
* ``POST /v1/speakers/{name}/verify`` (file ``file``) -- verify against an enrolled speaker;
* ``POST /v1/identify`` (file ``file``, ``top``) -- rank enrolled speakers;
* ``GET /`` -- the web page; ``/docs`` (Swagger UI, served locally) and ``/openapi.json`` -- the API
  description.

Every ``/v1`` route needs ``Authorization: Bearer KEY`` (401 without a valid key, 403 when an
admin key is needed). Request bodies over ``max_upload_bytes`` get 413 before they are read in
full. Model work runs in worker threads, at most ``workers`` at once, so the event loop keeps
answering other requests during inference.

Limits and headers (each in its own module): a key over ``rate_limit`` requests a minute, and a
client address after ``auth_fail_limit`` wrong keys, get 429 with ``Retry-After``
(:mod:`.ratelimit`); a busy store answers 409 with ``Retry-After`` (:mod:`.busy`); every request
is one JSON line on the ``speakerverify.access`` logger (:mod:`.access_log`); every response carries
security headers (:mod:`.headers`); ``private_docs`` puts ``/docs`` and ``/openapi.json`` behind a key.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import numpy as np
from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

from speakerverify.audio import check_limit, probe
from speakerverify.errors import (
    AudioError,
    DataError,
    ModelError,
    OperatingPointError,
    SpeakerNotFound,
    SpeakerVerifyError,
)
from speakerverify.scoring import IDENTIFY_STRANGER_RATE
from speakerverify.service import access_log
from speakerverify.service.access_log import AccessLog
from speakerverify.service.busy import retry_after_s, store_busy
from speakerverify.service.headers import SecurityHeaders
from speakerverify.service.limits import BodySizeLimit, HeaderSizeLimit
from speakerverify.service.ratelimit import AuthFailureLimit, KeyRateLimit, retry_after_header
from speakerverify.store import SpeakerStore
from speakerverify.store.keys import KeyInfo, check_key

log = logging.getLogger("speakerverify.service")
STATIC = Path(__file__).parent / "static"
T = TypeVar("T")

#: The HTTP status of each user-facing error class (the most specific class that matches wins).
ERROR_STATUS: dict[type[SpeakerVerifyError], int] = {
    AudioError: 422,            # an upload cannot be used as audio
    SpeakerNotFound: 404,
    ModelError: 409,            # the model in use cannot do what was asked (e.g. another store's model)
    OperatingPointError: 400,   # a FAR the model has no operating point for
    DataError: 400,
    SpeakerVerifyError: 400,
}


@dataclass
class ServiceConfig:
    store: str | os.PathLike | None = None
    model: str | os.PathLike | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    workers: int = 2
    threads: int | None = None  # torch threads; default: the CPU cores shared out among the workers
    keep_audio: bool | None = None  # None: the store's keep-audio setting
    # Longer recordings get 422, from the header before decoding (speakerverify.audio.limits' one rule).
    # Lower than the CLI's 10 minutes: requests are decoded side by side, each up to this many seconds.
    max_audio_s: float = 300.0
    rate_limit: float = 600.0        # requests a minute per API key (token bucket); 0 = off
    rate_burst: int | None = None    # requests a key may send at once; default: a tenth of a minute's worth
    auth_fail_limit: int = 20        # wrong keys from one client address within auth_fail_window_s; 0 = off
    auth_fail_window_s: float = 60.0
    private_docs: bool = False       # /docs and /openapi.json need a key too
    clock: Callable[[], float] = time.monotonic  # for the rate limits (tests move it instead of sleeping)
    verifier: Any = None  # a loaded Verifier to reuse (tests); loaded from ``model`` otherwise


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# Declared as a security scheme so the API page offers "Authorize"; errors stay ours (JSON, 401).
BEARER = HTTPBearer(auto_error=False, description="An API key from `speakerverify keys create NAME`.")


def api_key(request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> KeyInfo:
    """The caller's key from ``Authorization: Bearer KEY``; 401 when missing or unknown, 429 when
    the client sent too many wrong keys lately (before this key is checked) or the key is over its
    rate limit."""
    client = request.client.host if request.client else "unknown"
    failures: AuthFailureLimit = request.app.state.auth_failures
    wait = failures.blocked(client)
    if wait is not None:
        raise ApiError(429, f"too many invalid API keys from {client}: at most {failures.limit} in "
                            f"{failures.window_s:g} s; try again later", retry_after_header(wait))
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or not credentials.credentials.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer KEY'", challenge)
    info = check_key(request.app.state.store, credentials.credentials.strip())
    if info is None:
        failures.failed(client)
        raise ApiError(401, "invalid API key", challenge)
    setattr(request.state, access_log.KEY_NAME, info.name)
    per_key: KeyRateLimit = request.app.state.key_rate
    wait = per_key.take(info.name)
    if wait is not None:
        raise ApiError(429, f"key {info.name!r} is over its rate limit of {per_key.rate * 60:g} requests a "
                            f"minute; try again later", retry_after_header(wait))
    return info


def admin_key(info: Annotated[KeyInfo, Depends(api_key)]) -> KeyInfo:
    if not info.admin:
        raise ApiError(403, f"key {info.name!r} is not an admin key; enrolling and removing need one")
    return info


User = Annotated[KeyInfo, Depends(api_key)]
Admin = Annotated[KeyInfo, Depends(admin_key)]
#: The ``far`` form field: a false-accept rate, strictly between 0 and 1 (422 otherwise).
Far = Annotated[float | None, Form(gt=0, lt=1, description="Decide at this false-accept rate (0 < far < 1).")]
StrangerRate = Annotated[float | None, Form(
    gt=0, le=1, description="Let in at most this share of unenrolled speakers "
                            f"(calibrated models; default {IDENTIFY_STRANGER_RATE:g}).")]


def _limit_native_threads(threads: int) -> None:
    """BLAS/OpenMP pools (numpy, faiss) get the same share as torch: requests run side by side in
    worker threads, and oversubscribed pools slow everything down (a lot, on a busy small machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it the pools keep their defaults
        return
    threadpool_limits(limits=threads)


def create_app(config: ServiceConfig | None = None) -> FastAPI:
    config = config or ServiceConfig()
    verifier = config.verifier
    threads = config.threads or max(1, (os.cpu_count() or 1) // config.workers)
    max_audio_s = check_limit(config.max_audio_s)
    if verifier is None:
        from speakerverify.verifier import Verifier

        verifier = Verifier(config.model, threads=threads, max_audio_s=max_audio_s)
    elif config.threads:
        import torch

        torch.set_num_threads(config.threads)
    _limit_native_threads(threads)
    store = SpeakerStore(config.store, verifier=verifier, keep_audio=config.keep_audio, max_audio_s=max_audio_s)
    store.check_model(verifier)  # refuse to start on a store of another model
    store.follow_changes(verifier.model_ident)  # replicas over one PostgreSQL refresh early (NOTIFY)
    limiter = anyio.CapacityLimiter(config.workers)

    async def run_model(fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    app = FastAPI(title="speakerverify", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  description="Speaker verification and identification. Send `Authorization: Bearer KEY` "
                              "(create keys with `speakerverify keys create NAME [--admin]`).")
    app.state.store = store
    app.state.verifier = verifier
    app.state.config = config
    app.state.key_rate = KeyRateLimit(config.rate_limit, config.rate_burst, clock=config.clock)
    app.state.auth_failures = AuthFailureLimit(config.auth_fail_limit, config.auth_fail_window_s, clock=config.clock)
    # Outermost last: the access log sees every answer (413s too), and every answer gets the headers.
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(HeaderSizeLimit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)

    # -- errors: always {"error": "..."} ----------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
        return error(422, "; ".join(parts) or "invalid request")

    def _busy(exc: Exception) -> JSONResponse:
        wait = retry_after_s(exc)
        return error(409, f"the speaker store is busy ({exc}); retry in {wait} s", retry_after_header(wait))

    async def _user_error(_: Request, exc: Exception) -> JSONResponse:
        if store_busy(exc):
            return _busy(exc)
        status = next(code for cls, code in ERROR_STATUS.items() if isinstance(exc, cls))
        return error(status, str(exc))

    for cls in ERROR_STATUS:
        app.add_exception_handler(cls, _user_error)

    @app.exception_handler(sqlite3.OperationalError)
    async def _sqlite_error(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        if store_busy(exc):
            return _busy(exc)
        log.exception("internal error")
        return error(500, f"internal error ({type(exc).__name__})")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error(500, f"internal error ({type(exc).__name__})")

    async def read_upload(f: UploadFile, field: str) -> tuple[str, bytes]:
        data = await f.read()
        label = f.filename or field
        if not data:
            raise AudioError(label, "file is empty")
        probe(data, label, max_audio_s)  # header only: a bad rate or length is refused before queuing
        return label, data

    # -- routes ----------------------------------------------------------------------------

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": verifier.model_ident}

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        # The page whole (a FileResponse would answer a malformed Range header in plain text).
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The API page's Swagger UI is served from the swagger-ui-bundle-v2 wheel: FastAPI's default
    # /docs loads it from a CDN, which an offline machine (or a locked-down network) cannot reach.
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    # FastAPI's own /openapi.json route takes no dependencies: ours does, when the docs are private.
    docs_deps = [Depends(api_key)] if config.private_docs else []

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_deps)
    async def openapi_schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=docs_deps)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="speakerverify API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    @app.get("/v1/whoami", tags=["service"])
    async def whoami(key: User) -> dict[str, Any]:
        """The key's name and role, and the model in use."""
        return {"key": key.name, "admin": key.admin, "model": verifier.model_ident}

    @app.post("/v1/verify", tags=["verification"])
    async def verify(key: User, a: Annotated[UploadFile, File()], b: Annotated[UploadFile, File()],
                     far: Far = None) -> dict[str, Any]:
        """Do recordings ``a`` and ``b`` come from the same speaker?"""
        la, da = await read_upload(a, "a")
        lb, db = await read_upload(b, "b")

        def work() -> Any:
            wa, wb = verifier.load(da, la, max_audio_s), verifier.load(db, lb, max_audio_s)
            return verifier.verify(wa, wb, far, names=(la, lb))

        result = await run_model(work)
        return result.to_dict()

    @app.post("/v1/embed", tags=["verification"])
    async def embed(key: User, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """The speaker embedding of one recording."""
        label, data = await read_upload(file, "file")

        def work() -> dict[str, Any]:
            wave = verifier.load(data, name=label, max_audio_s=max_audio_s)
            emb = verifier.embed_waves([wave])[0]
            return {"model": verifier.model_ident, "dim": int(emb.size), "duration_s": round(len(wave) / 16000, 3),
                    "embedding": [float(x) for x in np.asarray(emb, dtype=np.float64)]}

        return await run_model(work)

    @app.get("/v1/speakers", tags=["speakers"])
    async def list_speakers(key: User) -> dict[str, Any]:
        """Enrolled speakers."""
        rows = await anyio.to_thread.run_sync(store.speakers)
        return {"model": store.model, "speakers": rows}

    @app.post("/v1/speakers", tags=["speakers"], status_code=201)
    async def enroll(key: Admin, name: Annotated[str, Form()], files: Annotated[list[UploadFile], File()],
                     replace: Annotated[bool, Form()] = False) -> dict[str, Any]:
        """Enroll speaker ``name`` from one or more ``files`` (admin key); adds clips to an existing
        speaker unless ``replace``."""
        # Not read_upload: one empty or over-long clip is skipped (and listed) by the store's policy.
        uploads = [(f.filename or "files", await f.read()) for f in files]
        result = await run_model(lambda: store.enroll(name, uploads, replace=replace, actor=f"key:{key.name}"))
        return result.to_dict()

    @app.delete("/v1/speakers/{name}", tags=["speakers"])
    async def remove(key: Admin, name: str) -> dict[str, Any]:
        """Remove an enrolled speaker (admin key)."""
        if not await anyio.to_thread.run_sync(lambda: store.remove(name, actor=f"key:{key.name}")):
            raise SpeakerNotFound(name)
        return {"removed": name}

    @app.post("/v1/speakers/{name}/verify", tags=["speakers"])
    async def verify_speaker(key: User, name: str, file: Annotated[UploadFile, File()],
                             far: Far = None) -> dict[str, Any]:
        """Is ``file`` the enrolled speaker ``name``?"""
        upload = await read_upload(file, "file")
        if not await anyio.to_thread.run_sync(store.__contains__, name):
            raise SpeakerNotFound(name)
        result = await run_model(lambda: store.verify(name, upload, far=far, actor=f"key:{key.name}"))
        return result.to_dict()

    @app.post("/v1/identify", tags=["speakers"])
    async def identify(key: User, file: Annotated[UploadFile, File()],
                       top: Annotated[int, Form(ge=1, le=100)] = 5,
                       far: Far = None, stranger_rate: StrangerRate = None) -> dict[str, Any]:
        """Who is speaking? Enrolled speakers ranked by score; ``speaker`` is ``unknown`` when none
        passes the threshold."""
        upload = await read_upload(file, "file")
        result = await run_model(lambda: store.identify(upload, top=top, far=far, stranger_rate=stranger_rate,
                                                        actor=f"key:{key.name}"))
        return result.to_dict()

    return app
