"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary folder, pg_ctl listening on
a Unix socket in that folder only (no TCP), stopped and deleted at the end.

``make postgres`` (run by ``make test``) installs Debian's ``postgresql``; where
it is missing or will not start, :func:`start_cluster` says why and the PostgreSQL cases skip.
initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user (created
by the Debian package), or ``nobody``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_counter = itertools.count()


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
                   if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _run_as() -> str | None:
    if os.getuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    return None


@dataclass
class Cluster:
    folder: Path
    bin: Path
    user: str | None

    @property
    def socket_dir(self) -> str:
        return str(self.folder)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.socket_dir}"

    def _cmd(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else args

    def run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self._cmd(args), capture_output=True, text=True, timeout=timeout,
                              cwd=self.folder)

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        self.run([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(durable: bool = False) -> Cluster | str:
    """A running cluster, or the reason there is none. The tests' cluster skips fsync (it is
    thrown away); ``durable=True`` keeps PostgreSQL's crash-safe defaults (benchmarks compare it
    with SQLite at ``synchronous=FULL``)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    bin_dir = pg_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        return "PostgreSQL is not installed (make postgres installs Debian's postgresql)"
    user = _run_as()
    if os.getuid() == 0 and user is None:
        return "running as root and no postgres or nobody user to run the server as"
    folder = Path(tempfile.mkdtemp(prefix="svpg-", dir="/tmp"))
    if user:
        info = pwd.getpwnam(user)
        os.chown(folder, info.pw_uid, info.pw_gid)
    cluster = Cluster(folder, bin_dir, user)
    init = cluster.run([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--locale=C", "--no-sync"], timeout=120)
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        return f"initdb failed: {(init.stderr or init.stdout).strip().splitlines()[-1:]}"
    options = f"-c listen_addresses='' -k {folder} -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    start = cluster.run([str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"),
                         "-o", options, "-w", "-t", "60", "start"], timeout=90)
    if start.returncode != 0:
        log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        return f"pg_ctl start failed: {(start.stderr + log).strip().splitlines()[-1:]}"
    return cluster
