#!/usr/bin/env python3
"""Weight-space interpolation of a fine-tuned model with its starting point (WiSE-FT, Wortsman
et al. 2022): ``(1 - alpha) * start + alpha * tuned``, every tensor (BatchNorm statistics too).
A fine-tune on little data gains on its new conditions and loses some of what the pretrained
network knew; the interpolation keeps much of both. Writes a run-like directory (``model/``,
``recipe.yaml``, ``meta.json``) whose back end is fitted on the recipe's dev lists and training
speakers (``train.devsets.refit_backend``), on the weights as stored (``--half-weights``).

    python scripts/interpolate_weights.py runs/campplus runs/default-campplus-ft --alpha 0.5 \\
        --recipe recipes/default-campplus-ft.yaml --half-weights --out runs/default-wise
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import torch

from speakerverify.embedding import load_model, write_model_dir
from speakerverify.embedding.model_dir import half_weights, write_backend
from speakerverify.train.devsets import refit_backend
from speakerverify.train.loop import resolve_recipe
from speakerverify.train.recipe import dump_recipe
from speakerverify.verifier import Verifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("start", help="the starting point (model or run directory)")
    ap.add_argument("tuned", help="the fine-tuned model (model or run directory)")
    ap.add_argument("--alpha", type=float, required=True, help="weight of the tuned model, 0..1")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recipe", type=Path, help="fit the back end on this recipe's dev lists and training speakers")
    ap.add_argument("--half-weights", action="store_true", help="store learned weights as float16")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not 0.0 <= a.alpha <= 1.0:
        ap.error("--alpha must be in [0, 1]")
    torch.set_num_threads(a.threads)
    start, tuned = load_model(a.start), load_model(a.tuned)
    if (start.config["arch"], start.config.get("params")) != (tuned.config["arch"], tuned.config.get("params")):
        ap.error("the two models have different architectures")
    s0, s1 = start.network.state_dict(), tuned.network.state_dict()
    mixed = {k: ((1 - a.alpha) * s0[k].double() + a.alpha * s1[k].double()).to(s1[k].dtype)
             if s1[k].is_floating_point() else s1[k] for k in s1}
    if a.half_weights:
        mixed = half_weights(mixed)
    cfg = tuned.config
    model_dir = write_model_dir(a.out / "model", cfg["arch"], cfg.get("params") or {}, cfg.get("frontend") or {},
                                mixed, name=str(cfg.get("name", "model")), version=str(cfg.get("version", "1")),
                                min_duration_s=float(cfg.get("min_duration_s", 0.1)))
    meta = {"kind": "interpolated", "start": str(a.start), "tuned": str(a.tuned), "alpha": a.alpha,
            "half_weights": a.half_weights, "end_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    if a.recipe:
        recipe = resolve_recipe(a.recipe, [])
        with torch.no_grad():
            fitted, cohort = refit_backend(Verifier(model_dir, threads=a.threads), recipe)
        write_backend(model_dir, fitted.backend, cohort if fitted.keep_cohort else None)
        (a.out / "recipe.yaml").write_text(dump_recipe(recipe))
        meta["recipe_path"] = str(a.recipe)
        print(f"dev EER % {json.dumps(fitted.backend.get('dev_eer_percent'))}")
    (a.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {model_dir}")


if __name__ == "__main__":
    main()
