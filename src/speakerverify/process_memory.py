"""Resident memory of a process, from Linux's ``/proc/PID/status``: for benchmarks and memory-bound tests.

A process's own peak is ``VmHWM``, not ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: Linux keeps
ru_maxrss across ``execve``, so a child started by a large parent (a benchmark holding every
embedding, a test runner with models loaded) reports the parent's peak as its own, while VmHWM is
the high-water mark of the child's own address space (``tests/test_process_memory.py``).

Standard library only, so another interpreter (the peers' environment in ``scripts/bench_models.py``)
can load this file by path with ``runpy.run_path``.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def status_kib(pid: int | str = "self") -> dict[str, int]:
    """The ``Vm*`` lines of /proc/PID/status (VmRSS, VmHWM, ...) in KiB; empty without /proc."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Vm") and value.strip().endswith("kB"):
            out[key] = int(value.split()[0])
    return out


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory now, MiB (NaN where /proc has no answer)."""
    kib = status_kib(pid).get("VmRSS")
    return float("nan") if kib is None else kib / 1024


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory of the process itself, MiB: VmHWM. Without /proc (macOS), this
    process's ru_maxrss (bytes there, KiB on Linux); NaN for another process."""
    kib = status_kib(pid).get("VmHWM")
    if kib is not None:
        return kib / 1024
    if pid != "self":
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
