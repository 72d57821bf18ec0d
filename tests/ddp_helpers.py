"""Run `speakerverify train` under torchrun with CPU processes (gloo), for the DDP tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def torchrun_train(recipe: Path, out: Path, nproc: int = 2, timeout: int = 180) -> None:
    script = Path(sys.executable).with_name("speakerverify")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(script), "train", str(recipe), "--out", str(out), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    # torchrun's own summary fills the tail of stderr; show the ranks' first words too
    assert proc.returncode == 0, proc.stderr[:3000] + "\n...\n" + proc.stderr[-1500:]
