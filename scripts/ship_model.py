#!/usr/bin/env python3
"""Copy a trained run's exported model into the package as a shipped model.

    python scripts/ship_model.py runs/default-fastnet default [--half-weights] [--onnx]

Copies ``RUN/model/*`` into ``src/speakerverify/pretrained/NAME/`` and records where it came from
(recipe, git revision, data manifest hash, per-epoch metrics) in ``TRAINING.json``; the model's
version becomes a hash of its weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from speakerverify.embedding.model_dir import half_weights

PRETRAINED = Path(__file__).resolve().parents[1] / "src" / "speakerverify" / "pretrained"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--onnx", action="store_true", help="also export model.onnx beside it")
    ap.add_argument("--half-weights", action="store_true", help="store the learned weights as float16")
    a = ap.parse_args()
    src = a.run / "model"
    if not (src / "model.yaml").is_file():
        sys.exit(f"error: {src}: no exported model (is the run finished?)")
    dst = PRETRAINED / a.name
    tmp = PRETRAINED / f".{a.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    meta = json.loads((a.run / "meta.json").read_text()) if (a.run / "meta.json").is_file() else {}
    lines = (a.run / "metrics.jsonl").read_text().splitlines() if (a.run / "metrics.jsonl").is_file() else []
    provenance = {"run": str(a.run), "recipe": (a.run / "recipe.yaml").read_text() if (a.run / "recipe.yaml").is_file()
                  else None, "meta": meta, "epochs": [json.loads(x) for x in lines]}
    (tmp / "TRAINING.json").write_text(json.dumps(provenance, indent=1))
    if a.half_weights:
        torch.save(half_weights(torch.load(tmp / "model.pt", map_location="cpu")), tmp / "model.pt")
    # The version names the weights, so stores can tell embeddings of two trainings apart.
    config = yaml.safe_load((tmp / "model.yaml").read_text())
    config["name"] = a.name
    config["version"] = hashlib.sha256((tmp / "model.pt").read_bytes()).hexdigest()[:10]
    (tmp / "model.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    if a.onnx:
        subprocess.run([sys.executable, "-m", "speakerverify", "export", str(dst), "--onnx", str(dst / "model.onnx")],
                       check=True)
    size = sum(p.stat().st_size for p in dst.iterdir()) / 1e6
    print(f"shipped {dst} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
