#!/usr/bin/env python3
"""Write one member of an ensemble model as a model directory of its own (its weights and
config; no back end), e.g. as ``model.init`` of a recipe.

    python scripts/ensemble_member.py ENSEMBLE_DIR --member 0 --out runs/member0

The fast model's starting point, the earlier shipped ensemble's first fastnet (distilled from
CAM++), is made from git history with:

    mkdir -p /tmp/old && git archive 77a3662 src/speakerverify/pretrained/default | tar -x -C /tmp/old
    python scripts/ensemble_member.py /tmp/old/src/speakerverify/pretrained/default --member 0 \\
        --out runs/fastnet-v3-member0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from speakerverify.embedding import load_model, write_model_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ensemble", help="a model directory whose arch is `ensemble`")
    ap.add_argument("--member", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    bundle = load_model(args.ensemble)
    if bundle.config["arch"] != "ensemble":
        raise SystemExit(f"{args.ensemble}: arch is {bundle.config['arch']}, not an ensemble")
    members = bundle.config["params"]["members"]
    if not 0 <= args.member < len(members):
        raise SystemExit(f"{args.ensemble}: has members 0..{len(members) - 1}")
    spec = members[args.member]
    state = {k.split(".", 2)[2]: v.float() for k, v in bundle.network.state_dict().items()
             if k.startswith(f"members.{args.member}.")}
    out = write_model_dir(args.out, spec["arch"], spec.get("params") or {}, bundle.config["frontend"], state,
                          name=f"{bundle.name}-member{args.member}", version=bundle.version,
                          min_duration_s=float(bundle.config.get("min_duration_s", 0.1)))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
