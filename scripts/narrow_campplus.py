#!/usr/bin/env python3
"""Write a narrowed CAM++ (fewer front-module channels, the first layers of each dense block;
see :mod:`speakerverify.models.campplus_narrow`) sliced from a CAM++ model directory, as a model
directory of its own (weights and config, no back end), e.g. as ``model.init`` of a recipe.

    python scripts/narrow_campplus.py default --m-channels 12 --layers 3,6,4 --out runs/campplus-narrow
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from speakerverify.embedding import load_model, write_model_dir  # noqa: E402
from speakerverify.models.campplus_narrow import narrow_campplus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a CAM++ model name or directory")
    ap.add_argument("--m-channels", type=int, required=True, help="front-module channels to keep")
    ap.add_argument("--layers", required=True, help="layers to keep in each dense block, e.g. 3,6,4")
    ap.add_argument("--name", default="narrow")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    bundle = load_model(args.model)
    cfg = bundle.config
    if cfg["arch"] != "campplus":
        raise SystemExit(f"{args.model}: arch is {cfg['arch']}, not campplus")
    try:
        layers = [int(x) for x in args.layers.split(",")]
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in bundle.network.state_dict().items()}
        params, narrowed = narrow_campplus(state, cfg.get("params") or {}, args.m_channels, layers)
    except ValueError as exc:
        raise SystemExit(f"{args.model}: {exc}") from None
    out = write_model_dir(args.out, "campplus", params, cfg.get("frontend") or {}, narrowed, name=args.name,
                          version="1", min_duration_s=float(cfg.get("min_duration_s", 0.1)))
    n = sum(v.numel() for k, v in narrowed.items() if "running_" not in k and "num_batches" not in k)
    print(f"wrote {out} ({n / 1e6:.2f} M parameters)")


if __name__ == "__main__":
    main()
