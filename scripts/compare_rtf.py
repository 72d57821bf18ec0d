#!/usr/bin/env python3
"""A short real-time-factor comparison of model directories on the benchmark's speed clips.

    python scripts/compare_rtf.py default runs/models/fusion-default-ecapa --secs 3 --rounds 3

Ten clips of ``--secs`` seconds (``scripts/bench_models.py``'s ``speed_clips``), batch of one,
``--threads`` intra-op threads; the models take turns for ``--rounds`` rounds (so load from other
processes on a shared CPU falls on all of them alike) and each model's median round is reported,
with its ratio to the first model's. For a quick check; ``make bench`` is the measurement of record.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import speed_clips  # noqa: E402

from speakerverify.verifier import Verifier  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--secs", type=int, choices=(1, 3, 10), default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    verifiers = [Verifier(m, threads=a.threads) for m in a.models]
    with tempfile.TemporaryDirectory() as tmp:
        files = speed_clips(a.shared, Path(tmp))[str(a.secs)]
        waves = [verifiers[0].load(f) for f in files]
    rounds: list[list[float]] = [[] for _ in verifiers]
    for v in verifiers:
        v.embed_waves(waves[:2])  # warm-up
    for _ in range(a.rounds):
        for k, v in enumerate(verifiers):
            v.embedder.compute_s = 0.0
            for w in waves:
                v.embed_waves([w])
            rounds[k].append(v.embedder.compute_s / (len(waves) * a.secs))
    rtf = [float(np.median(r)) for r in rounds]
    out = {m: {"rtf": round(r, 5), "of_first": round(r / rtf[0], 3), "rounds": [round(x, 5) for x in rs]}
           for m, r, rs in zip(a.models, rtf, rounds, strict=True)}
    print(json.dumps({"clips": len(waves), "secs": a.secs, "threads": a.threads, "models": out}, indent=2))


if __name__ == "__main__":
    main()
