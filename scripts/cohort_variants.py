#!/usr/bin/env python3
"""AS-norm cohort variants of a model on its recipe's dev conditions (dev only: this chooses).

The shipped cohort is one mean embedding per training speaker (first 4 s of a few clips each).
Short test clips may be better normalised against short cohort clips, so this scores the dev
conditions (``train.devsets``: each dev list as recorded and, where the recipe says so, as 1-s
telephone-band crops) with AS-norm against: the model's cohort; seeded 1-s crops of the training
speakers' clips (clean, telephone-band) instead; and the union; each at several top-k.

    python scripts/cohort_variants.py default --recipe recipes/default-campplus-ft.yaml \\
        --section "AS-norm cohort variants of the shipped default (dev only)"
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ablation import write_section  # noqa: E402

from speakerverify import metrics  # noqa: E402
from speakerverify.scoring import ASNorm, cosine  # noqa: E402
from speakerverify.train.devsets import (  # noqa: E402
    dev_conditions,
    dev_specs,
    manifest_specs,
    per_speaker_choice,
    short_crops,
    train_utterances,
)
from speakerverify.train.loop import resolve_recipe  # noqa: E402
from speakerverify.verifier import Verifier  # noqa: E402


def training_crops(recipe: dict, per_speaker: int, seconds: float, seed: int) -> tuple[list, list]:
    """Seeded ``seconds``-long crops of ``per_speaker`` clips of every training speaker: clean and
    through the telephone channel."""
    utts = per_speaker_choice(train_utterances(manifest_specs(recipe["data"]))[0], per_speaker, seed)
    waves = [sf.read(u.path, dtype="float32")[0] for u in utts]
    return short_crops(waves, seconds, seed, telephone_band=False), short_crops(waves, seconds, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--recipe", type=Path, default=Path("recipes/default-campplus-ft.yaml"))
    ap.add_argument("--per-speaker", type=int, default=2)
    ap.add_argument("--top-k", type=int, nargs="+", default=[50, 100, 200, 400])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("docs/ablation.md"))
    ap.add_argument("--section", help="write the table as this section of --out (else print it only)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    v = Verifier(a.model, threads=a.threads)
    if v.backend.asnorm is None:
        ap.error(f"{a.model}: its back end has no AS-norm cohort")
    recipe = resolve_recipe(a.recipe, [])
    specs, legacy = dev_specs(recipe["data"], recipe.get("export"))
    conds = []
    for name, dev, waves in dev_conditions(specs, legacy):
        emb = v.embed_waves(list(waves))
        conds.append((name, emb[dev.ia], emb[dev.ib], dev.labels))
    clean, tel = training_crops(recipe, a.per_speaker, 1.0, seed=7)
    short_clean, short_tel = v.embed_waves(clean), v.embed_waves(tel)
    shipped = v.backend.asnorm.cohort
    cohorts = {f"the model's ({len(shipped)} speaker means)": shipped,
               f"1-s clean crops ({len(short_clean)})": short_clean,
               f"1-s telephone-band crops ({len(short_tel)})": short_tel,
               "speaker means + 1-s clean crops": np.concatenate([shipped, short_clean]),
               "speaker means + both kinds of crops": np.concatenate([shipped, short_clean, short_tel])}

    def row(label: str, scores: list[np.ndarray]) -> str:
        eers = [100 * metrics.eer(s, y)[0] for s, (_, _, _, y) in zip(scores, conds, strict=True)]
        return f"| {label} | {np.mean(eers):.2f} | " + " | ".join(f"{e:.2f}" for e in eers) + " |"

    lines = ["| cohort | mean dev | " + " | ".join(c[0] for c in conds) + " |", "|---|---|" + "---|" * len(conds),
             row("none (raw cosine)", [cosine(ea, eb) for _, ea, eb, _ in conds])]
    for label, cohort in cohorts.items():
        for k in a.top_k:
            if k <= len(cohort):
                asn = ASNorm(cohort, k)
                lines.append(row(f"{label}, top {k}", [asn(ea, eb) for _, ea, eb, _ in conds]))
    command = "python scripts/cohort_variants.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    lines += ["", "```", command, "```", ""]
    if a.section:
        write_section(a.out, a.section, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
