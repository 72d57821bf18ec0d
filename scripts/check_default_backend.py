#!/usr/bin/env python3
"""Rebuild the shipped default model's back end with ``scoring.fit.fit_backend`` and compare it with
``src/speakerverify/pretrained/default/backend.json``.

    .venv/bin/python scripts/check_default_backend.py [--out rebuilt.json]

The dev list, training speakers (AS-norm cohort) and export settings come from the recipe
recorded in the model's ``TRAINING.json``; the shipped weights embed them. Prints ``identical``
when the rebuilt file is byte for byte the shipped one; otherwise every number that differs, with
its relative difference (embeddings depend on the machine's floating-point kernels and thread
count at the 1e-7 level, which the logistic fit carries into the last digits). Exit status 1 when
anything but such last-digit noise differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from speakerverify.embedding import PRETRAINED
from speakerverify.train.devsets import refit_backend
from speakerverify.verifier import Verifier

NOISE = 1e-5  # relative difference that counts as floating-point noise


def differences(a, b, where: str = "") -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [(where or "/", list(a), list(b))]
        return [d for k in a for d in differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [(where, a, b)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=PRETRAINED / "default")
    ap.add_argument("--out", type=Path, default=None, help="also write the rebuilt backend.json here")
    a = ap.parse_args()
    recipe = yaml.safe_load(json.loads((a.model / "TRAINING.json").read_text())["recipe"])
    with torch.no_grad():
        fitted, _ = refit_backend(Verifier(a.model), recipe)
    rebuilt = json.dumps(fitted.backend, indent=2)
    shipped = (a.model / "backend.json").read_text()
    if a.out:
        a.out.write_text(rebuilt)
    if rebuilt == shipped:
        print("identical: the rebuilt backend.json is byte for byte the shipped one")
        return
    worst = 0.0
    for where, got, want in differences(fitted.backend, json.loads(shipped)):
        rel = abs(got - want) / max(abs(want), 1e-12) if isinstance(got, float) and isinstance(want, float) else 1.0
        worst = max(worst, rel)
        print(f"{where}: rebuilt {got!r}, shipped {want!r} (relative difference {rel:.1e})")
    print(f"not byte-identical; largest relative difference {worst:.1e}"
          + (" (floating-point noise)" if worst <= NOISE else ""))
    sys.exit(0 if worst <= NOISE else 1)


if __name__ == "__main__":
    main()
