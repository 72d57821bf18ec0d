#!/usr/bin/env python3
"""Weight-space interpolation of a fine-tuned model with its starting point (WiSE-FT, Wortsman
et al. 2022): ``(1 - alpha) * start + alpha * tuned``, every tensor (BatchNorm statistics too).
A fine-tune on little data gains on its new conditions and loses some of what the pretrained
network knew; the interpolation keeps much of both. The result is a model directory with the
tuned one's config (no back end: fit it with the training export or ``scripts/fit_backend.py``).

    python scripts/interpolate_weights.py START_DIR TUNED_DIR --alpha 0.5 --out runs/wise-0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from speakerverify.embedding import load_model, write_model_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("start")
    ap.add_argument("tuned")
    ap.add_argument("--alpha", type=float, required=True, help="weight of the tuned model, 0..1")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if not 0.0 <= a.alpha <= 1.0:
        ap.error("--alpha must be in [0, 1]")
    start, tuned = load_model(a.start), load_model(a.tuned)
    if (start.config["arch"], start.config.get("params")) != (tuned.config["arch"], tuned.config.get("params")):
        ap.error("the two models have different architectures")
    s0, s1 = start.network.state_dict(), tuned.network.state_dict()
    mixed = {k: ((1 - a.alpha) * s0[k].double() + a.alpha * s1[k].double()).to(s1[k].dtype)
             if s1[k].is_floating_point() else s1[k] for k in s1}
    cfg = tuned.config
    write_model_dir(a.out, cfg["arch"], cfg.get("params") or {}, cfg.get("frontend") or {}, mixed,
                    name=str(cfg.get("name", "model")), version=str(cfg.get("version", "1")),
                    min_duration_s=float(cfg.get("min_duration_s", 0.1)),
                    extra={"interpolated": {"start": str(a.start), "tuned": str(a.tuned), "alpha": a.alpha}})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
