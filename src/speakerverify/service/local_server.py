"""``speakerverify serve`` started as a child process on 127.0.0.1, for tests, benchmarks and
notebooks: :func:`start_local_server` picks a free port, waits until ``/healthz`` answers and
returns a :class:`LocalServer` that stops it (``with`` or :meth:`LocalServer.stop`).

It listens on localhost only; its output goes to a log file, whose tail is quoted when it fails to
start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from speakerverify.errors import SpeakerVerifyError


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask it to stop (SIGTERM: uvicorn finishes open requests), then kill it if it will not."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_server(store: str | os.PathLike, log: Path, *, workers: int = 1, threads: int | None = None,
                       model: str | None = None, extra: tuple[str, ...] = (), port: int | None = None,
                       start_timeout_s: float = 120.0) -> LocalServer:
    """``speakerverify serve --host 127.0.0.1`` on ``store``, up and answering ``/healthz``.
    ``extra``: more ``serve`` options (``--rate-limit 0``, ``--no-access-log``...)."""
    port = port or free_port()
    cmd = [sys.executable, "-c", "from speakerverify.cli import main; main()", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--store", str(store), "--workers", str(workers), *extra]
    if threads:
        cmd += ["--threads", str(threads)]
    if model:
        cmd += ["--model", str(model)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server = LocalServer(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + start_timeout_s
    while True:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        exited = proc.poll() is not None
        if exited or time.monotonic() > deadline:
            server.stop()
            why = f"exited ({proc.returncode})" if exited else f"did not answer in {start_timeout_s:g} s"
            tail = log.read_text(errors="replace")[-2000:]
            raise SpeakerVerifyError(f"speakerverify serve on port {port} {why}: {tail}")
        time.sleep(0.3)
