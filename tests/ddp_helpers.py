"""Run `speakerverify train` under torchrun with CPU processes (gloo), for the DDP tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def torchrun_train(recipe: Path, out: Path, epochs: int, nproc: int = 2, timeout: int = 180) -> None:
    """Train under torchrun; check that every rank took part, ended with the same weights and that
    each of ``epochs`` epochs was logged."""
    script = Path(sys.executable).with_name("speakerverify")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(script), "train", str(recipe), "--out", str(out), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    # torchrun's own summary fills the tail of stderr; show the ranks' first words too
    assert proc.returncode == 0, proc.stderr[:3000] + "\n...\n" + proc.stderr[-1500:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["world_size"] == nproc
    digests = meta["rank_weight_digests"]
    assert len(digests) == nproc and len(set(digests)) == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == epochs
