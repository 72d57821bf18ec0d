#!/usr/bin/env python3
"""Write docs/results.md: the seed-protocol table (from docs/results-seed.md, made by
scripts/seed_table.py) and each shipped model on every trial list and on the seed protocol.

    python scripts/results.py --shared ../shared [--models default fast]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from speakerverify.data import DEV_LISTS, TEST_LISTS
from speakerverify.evaluate import evaluate_seed_pairs, evaluate_trials
from speakerverify.verifier import Verifier

LISTS = DEV_LISTS + TEST_LISTS


def model_section(v: Verifier, data: Path, shared: str) -> list[str]:
    rows = [(name, evaluate_trials(data / "trials" / f"{name}.txt", data, verifier=v)) for name in LISTS]
    seed = evaluate_seed_pairs(data / "seed-protocol/tes.pkl", data / "seed-protocol/test_pairs.txt", verifier=v)
    lines = [f"## The shipped model `{v.model_name}` ({v.model_ident}) on every trial list", "",
             "Its AS-norm cohort, calibration and thresholds were fitted on the pooled dev lists "
             f"({', '.join(DEV_LISTS)}), "
             "so their rows are optimistic by construction; the test lists are held out.", "",
             "| trial list | trials | EER % | minDCF 0.01 | minDCF 0.05 | Cllr | min Cllr | accuracy at threshold | "
             "command |", "|---|---|---|---|---|---|---|---|---|"]
    flag = "" if v.model_name == "default" else f" --model {v.model_name}"
    for name, r in rows:
        cmd = f"`speakerverify eval {shared}/data/trials/{name}.txt --root {shared}/data{flag} --json`"
        lines.append(f"| {name} | {r['n_trials']} | {r['eer_percent']:.2f} | {r['min_dcf_p01']:.3f} | "
                     f"{r['min_dcf_p05']:.3f} | {r.get('cllr', float('nan')):.3f} | {r['min_cllr']:.3f} | "
                     f"{100 * r['accuracy_at_threshold']:.1f} % | {cmd} |")
    lines += ["", f"Seed protocol (1-s clips of the 20 test speakers, the 1800 fixed pairs), `{v.model_name}`: "
              f"pair accuracy {100 * seed['pair_accuracy']:.1f} % at its dev threshold, "
              f"EER {seed['eer_percent']:.2f} % "
              f"(`speakerverify seed-eval {shared}/data/seed-protocol/tes.pkl "
              f"{shared}/data/seed-protocol/test_pairs.txt{flag} --json`).", ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--models", nargs="+", default=["default", "fast"])
    ap.add_argument("--out", default="docs/results.md")
    a = ap.parse_args()
    data = Path(a.shared) / "data"
    lines = ["# Results", "",
             f"Measured {time.strftime('%Y-%m-%d')} on a 2-core CPU machine. Regenerate this page with "
             f"`.venv/bin/python scripts/results.py --shared {a.shared}` (the seed table with "
             "`.venv/bin/python scripts/seed_table.py`, ~1 hour). Side-by-side comparisons with the open peers "
             "are in [benchmarks.md](benchmarks.md).", ""]
    seed_doc = Path("docs/results-seed.md")
    if seed_doc.is_file():
        text = seed_doc.read_text()
        body = text.split("\n", 1)[1] if text.startswith("# ") else text
        lines += ["## The seed protocol: the notebook's models, reproduced", "", body.strip(), ""]
    for model in a.models:
        lines += model_section(Verifier(model), data, a.shared)
    Path(a.out).write_text("\n".join(lines))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
