"""``serve``: the REST service and web page (FastAPI + uvicorn), with its limits and access log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from speakerverify.cli.common import KeyFileOpt, ModelOpt, StoreOpt, err, fail
from speakerverify.cli.store import KeepAudioOpt, _store

UploadOpt = Annotated[float, typer.Option("--max-upload-mb", min=0.01, help="Largest request body.")]
RateOpt = Annotated[float, typer.Option(
    "--rate-limit", min=0, help="Requests a minute per API key; over it, 429 with Retry-After (0: off).")]
BurstOpt = Annotated[int | None, typer.Option(
    "--rate-burst", min=1, help="Requests a key may send at once (default: a tenth of --rate-limit).")]
AuthFailOpt = Annotated[int, typer.Option(
    "--auth-fail-limit", min=0, help="Wrong API keys from one client address within --auth-fail-window-s before "
                                     "it gets 429 on every keyed route (0: off).")]
AuthWindowOpt = Annotated[float, typer.Option("--auth-fail-window-s", min=1, help="The window of --auth-fail-limit.")]
PrivateDocsOpt = Annotated[bool, typer.Option("--private-docs", help="/docs and /openapi.json need an API key too.")]
AccessLogOpt = Annotated[str, typer.Option(
    "--access-log", metavar="FILE", help="The JSON access log: a file (appended) or - for stderr.")]


def serve(host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
          store: StoreOpt = None, model: ModelOpt = None,
          max_upload_mb: UploadOpt = 20.0,
          workers: Annotated[int, typer.Option("--workers", min=1, max=64,
                                               help="Threads running model inference at once.")] = 2,
          threads: Annotated[int | None, typer.Option("--threads", min=1,
                                                      help="Torch threads (default: CPU cores / workers).")] = None,
          max_audio_s: Annotated[float, typer.Option(
              "--max-audio-s", min=1, help="Longest recording accepted, in seconds (checked from the header).")] = 300,
          keep_audio: KeepAudioOpt = None, key_file: KeyFileOpt = None,
          rate_limit: RateOpt = 600, rate_burst: BurstOpt = None,
          auth_fail_limit: AuthFailOpt = 20, auth_fail_window_s: AuthWindowOpt = 60,
          private_docs: PrivateDocsOpt = False, access_log: AccessLogOpt = "-",
          no_access_log: Annotated[bool, typer.Option("--no-access-log", help="Log no requests.")] = False) -> None:
    """Run the REST service and web page (FastAPI + uvicorn)."""
    import os

    import uvicorn

    from speakerverify.service import access_log as access
    from speakerverify.service.app import ServiceConfig, create_app
    from speakerverify.service.protocol import server_config
    from speakerverify.store.crypto import ENV_KEY_FILE
    from speakerverify.store.keys import list_keys

    if key_file is not None:  # the service's store (and any store it opens) reads the key from here
        os.environ[ENV_KEY_FILE] = str(key_file)
    checked = _store(store)
    problems = checked.db.quick_check()  # refuse a damaged store before loading the model
    if problems:
        fail(f"{checked.path}: speaker store is damaged ({problems[0]}); see `speakerverify store check`")
    checked.close()
    config = ServiceConfig(store=store, model=model, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                           workers=workers, threads=threads, keep_audio=keep_audio, max_audio_s=max_audio_s,
                           rate_limit=rate_limit, rate_burst=rate_burst, auth_fail_limit=auth_fail_limit,
                           auth_fail_window_s=auth_fail_window_s, private_docs=private_docs)
    app = create_app(config)
    access.configure(None if no_access_log else (access_log if access_log == "-" else Path(access_log)))
    if not list_keys(app.state.store):
        err.print("[yellow]warning:[/] no API keys yet; create one with "
                  "`speakerverify keys create NAME --admin`", highlight=False)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]note:[/] listening on {host}: put TLS in front of it, keys travel in headers",
                  highlight=False)
    server = uvicorn.Server(server_config(app, host, port))
    server.run()
    if not server.started:  # e.g. the port is taken: uvicorn has said why
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command()(serve)
