#!/usr/bin/env python3
"""Does a model's calibration gain from shorter dev crops? Refit its back end with extra dev
conditions of ``--short-s``-second telephone-band crops and compare Cllr and accuracy at the
operating point on every list.

    python scripts/calibration_range.py --model src/speakerverify/pretrained/default --short-s 0.5

The back end is refitted as shipped (``train.devsets.refit_backend``'s conditions from the recipe in
the model's ``TRAINING.json``, its ``cohort.npy``) and again with 0.5-s (say) crops of the dev lists
added: of ``--extra-lists`` (default: the first dev list) or of every dev list. Trial embeddings
come from the ablation cache (``scripts/embed_lists.py`` under runs/emb/), scored with the model's
AS-norm where the fit keeps it. The duration of a trial is the shorter recording's, as at run time. Dev rows are
optimistic (fitted on them); test rows are reported, never used to fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from ablation import ALL_LISTS, SEED, cached, trial_pairs  # noqa: E402

from speakerverify import metrics  # noqa: E402
from speakerverify.scoring import ASNorm, Backend, cosine  # noqa: E402
from speakerverify.scoring.fit import fit_backend  # noqa: E402
from speakerverify.train.devsets import dev_conditions, dev_specs, short_crops  # noqa: E402
from speakerverify.verifier import Verifier  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("src/speakerverify/pretrained/default"))
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--short-s", type=float, default=0.5)
    ap.add_argument("--extra-lists", choices=("first", "all"), default="first",
                    help="add short crops of the first dev list only, or of every dev list")
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/emb"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    verifier = Verifier(a.model, threads=a.threads)
    recipe = yaml.safe_load(json.loads((a.model / "TRAINING.json").read_text())["recipe"])
    exp = recipe.get("export") or {}
    top_k = int(exp.get("top_k", 50))
    cohort = np.load(a.model / "cohort.npy").astype(np.float32)
    specs, legacy = dev_specs(recipe["data"], exp)

    def embed(waves):
        return verifier.embed_waves(list(waves))

    shipped, extra = [], []
    for name, dev, waves in dev_conditions(specs, legacy):
        shipped.append(dev.condition(name, waves, embed))
        if waves is dev.waves and (a.extra_lists == "all" or not extra):
            crops = short_crops(dev.waves, a.short_s, seed=777)
            extra.append(dev.condition(f"{name}-short{a.short_s:g}s-tel", crops, embed))
    fits = {"as shipped": fit_backend(shipped, cohort, top_k=top_k).backend,
            f"+ {a.short_s:g}-s crops ({', '.join(c.name for c in extra)})":
                fit_backend(shipped + extra, cohort, top_k=top_k).backend}
    for label, backend in fits.items():
        print(f"{label}: calibration {json.dumps(backend['calibration'])}, AS-norm {'asnorm' in backend}")

    cache = a.cache_dir / f"{a.model.name}.npz"
    emb = cached(a.model, a.shared, cache, a.threads)
    with np.load(cache) as z:  # each recording's duration, as the cache's embedding saw it
        seconds = {str(f): float(d) for f, d in zip(z["files"], z["durations"], strict=True)}
    backends = [Backend(b, cohort) for b in fits.values()]  # scores, LLRs and thresholds as at run time
    asn = ASNorm(cohort, top_k)  # min Cllr column: the shipped model's AS-norm
    rows = ["| list | min Cllr (AS-norm) | " + " | ".join(f"Cllr, {k} | accuracy, {k}" for k in fits) + " |",
            "|---|---|" + "---|---|" * len(fits)]
    for name in ALL_LISTS:
        ka, kb, labels = trial_pairs(a.shared, name)
        ea, eb = np.stack([emb[k] for k in ka]), np.stack([emb[k] for k in kb])
        raw = cosine(ea, eb)
        normed = asn(ea, eb, raw)
        dur = np.array([min(seconds[x], seconds[y]) for x, y in zip(ka, kb, strict=True)])
        cells = []
        for backend in backends:
            scores = raw if backend.asnorm is None else backend.asnorm(ea, eb, raw)
            cells += [f"{metrics.cllr(backend.calibration.llr(scores, dur), labels):.3f}",
                      f"{100 * metrics.accuracy(scores, labels, backend.thresholds_for(dur)):.1f} %"]
        label = "seed protocol" if name == SEED else name
        rows.append(f"| {label} | {metrics.min_cllr(normed, labels):.3f} | " + " | ".join(cells) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
