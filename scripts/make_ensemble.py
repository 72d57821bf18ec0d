#!/usr/bin/env python3
"""Join trained embedding runs into one ensemble model (score fusion by averaged cosines).

    python scripts/make_ensemble.py --recipe recipes/default-fastnet.yaml --out runs/default-ensemble \\
        runs/default-fastnet runs/fastnet-aam-kd

The members' weights are taken as exported (``RUN/model``); the back end (calibration,
thresholds, AS-norm decision) is fitted afresh by ``scoring.fit.fit_backend`` on the recipe's dev
split and training speakers, as training's own export does (``train.devsets.refit_backend``: no
training set is loaded). The result is a run directory (``OUT/model``, ``OUT/meta.json``,
``OUT/recipe.yaml``) that ``scripts/ship_model.py`` can ship. Members must share the recipe's
front end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import torch

from speakerverify import models
from speakerverify.embedding import load_model, write_model_dir
from speakerverify.embedding.model_dir import half_weights, write_backend
from speakerverify.train.devsets import refit_backend
from speakerverify.train.loop import resolve_recipe
from speakerverify.train.recipe import dump_recipe
from speakerverify.verifier import Verifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", type=Path, required=True, help="recipe whose dev split and export settings to use")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--half-weights", action="store_true",
                    help="store weights as float16 (half the size); the back end is fitted on the rounded weights")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override, as for `speakerverify train` (e.g. export.asnorm=false)")
    ap.add_argument("runs", type=Path, nargs="+", help="trained runs (or model dirs) to join")
    a = ap.parse_args()
    if len(a.runs) < 2:
        sys.exit("error: an ensemble needs at least two runs")
    recipe = resolve_recipe(a.recipe, a.overrides)
    members, bundles = [], []
    for run in a.runs:
        bundle = load_model(run)  # a run directory or a model directory
        if bundle.config["frontend"] != recipe["frontend"]:
            sys.exit(f"error: {bundle.directory}: front end {bundle.config['frontend']} differs from the recipe's")
        members.append({"arch": bundle.config["arch"], "params": bundle.config.get("params") or {}})
        bundles.append(bundle)
    network = models.build("ensemble", members=members)
    for member, bundle in zip(network.members, bundles, strict=True):
        member.load_state_dict(bundle.network.state_dict())
    # The loader copies float16 tensors into the float32 network: the back end is fitted on what ships.
    state = half_weights(network.state_dict()) if a.half_weights else network.state_dict()
    exp = recipe.get("export") or {}
    model_dir = write_model_dir(a.out / "model", "ensemble", {"members": members}, recipe["frontend"], state,
                                name=exp.get("name", "ensemble"), version=str(exp.get("version", "1")),
                                min_duration_s=float(exp.get("min_duration_s", 0.1)))
    with torch.no_grad():
        fitted, cohort = refit_backend(Verifier(model_dir), recipe)
    write_backend(model_dir, fitted.backend, cohort if fitted.keep_cohort else None)
    (a.out / "recipe.yaml").write_text(dump_recipe(recipe))
    meta = {"kind": "ensemble", "members": [str(r) for r in a.runs], "recipe_path": str(a.recipe),
            "member_meta": [_meta(r) for r in a.runs],
            "end_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    (a.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {model_dir}; dev EER % {json.dumps(fitted.backend.get('dev_eer_percent'))}")


def _meta(run: Path) -> dict:
    path = run / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


if __name__ == "__main__":
    main()
