"""speakerverify.process_memory: a process's own peak memory, not its parent's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speakerverify import process_memory
from speakerverify.process_memory import peak_rss_mb, rss_mb, status_kib

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")

# A parent that holds ~300 MB, then starts a small child that reports its own memory both ways.
PARENT = """
import json, subprocess, sys
held = bytearray(300 << 20)
held[::4096] = b"x" * len(held[::4096])  # touch every page: resident, not just reserved
child = '''
import json, resource
from speakerverify.process_memory import peak_rss_mb
inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_rss_mb": peak_rss_mb(), "ru_maxrss_mb": inherited}))
'''
print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout)
"""


def test_a_child_of_a_large_parent_reports_its_own_peak() -> None:
    out = subprocess.run([sys.executable, "-c", PARENT], capture_output=True, text=True, check=True, timeout=120)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert 1 < child["peak_rss_mb"] < 150  # the interpreter and this module, not the parent's 300 MB
    # What the module exists for: on Linux ru_maxrss carries the parent's peak across execve.
    assert child["ru_maxrss_mb"] > 300


def test_the_peak_follows_an_allocation_and_stays_after_it_is_freed() -> None:
    code = """
import json
from speakerverify.process_memory import peak_rss_mb, rss_mb
before = peak_rss_mb()
block = bytearray(200 << 20)
block[::4096] = b"x" * len(block[::4096])
during = rss_mb()
del block
print(json.dumps({"before": before, "during": during, "after": rss_mb(), "peak": peak_rss_mb()}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    m = json.loads(out.stdout)
    assert m["during"] >= m["before"] + 190
    assert m["peak"] >= m["during"] - 1
    assert m["after"] < m["peak"] - 150  # freed, while the high-water mark keeps the peak


def test_another_process_and_one_that_does_not_exist() -> None:
    parent = status_kib(os.getppid())
    assert parent["VmHWM"] >= parent["VmRSS"] > 0
    assert status_kib(2**22 + 12345) == {}  # above the kernel's pid limit: no such process
    assert peak_rss_mb(2**22 + 12345) != peak_rss_mb(2**22 + 12345)  # NaN
    assert rss_mb() > 1


def test_the_module_runs_by_path_in_a_bare_interpreter() -> None:
    """bench_models loads it by path in the peers' environment, which lacks our package."""
    code = f"import runpy; print(runpy.run_path({process_memory.__file__!r})['peak_rss_mb']())"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True,
                         timeout=60)
    assert 1 < float(out.stdout) < 150
