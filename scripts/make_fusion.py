#!/usr/bin/env python3
"""Fuse model directories with (possibly) different front ends into one calibrated fusion model.

    python scripts/make_fusion.py default runs/models/ecapa --out runs/models/fusion-default-ecapa

1. Every member embeds the recipe's dev conditions (``data.dev`` of ``--recipe``: each dev list as
   recorded and, where the list has ``short_s``, its seeded short telephone-band crops;
   :mod:`speakerverify.train.devsets`). Embeddings are cached per member under ``--cache-dir``
   (``NAME-dev-SHA.npz``); whole recordings already in ``scripts/embed_lists.py``'s cache of the
   member (``NAME.npz``) are taken from there, so nothing is embedded twice.
2. One logistic regression on the pooled dev trials, with features each member's raw cosine and
   the log of the shorter side's duration, gives one LLR (:func:`speakerverify.scoring.fusion.fit_fusion`);
   its member weights, negatives clipped to 0 and renormalised, are the fusion's alpha.
3. The fusion model (:class:`speakerverify.models.fusion.Fusion` over a ``stacked`` front end)
   is written with the members' weights; its back end (duration-aware calibration, thresholds) is
   fitted by :func:`speakerverify.scoring.fit.fit_backend` on the fused dev scores. The members'
   raw cosines go into the fusion, not their AS-normed scores: AS-norm is a per-pair function of a
   cohort that no single vector can carry. AS-norm is instead offered on the fused score, with a
   fused cohort (each member's cohort of the recipe's training speakers, ``export.cohort_files``
   clips each, combined with alpha as embeddings are; cached per member), and kept only if it lowers
   the pooled dev EER (``fit_backend``'s rule); ``--no-asnorm`` skips it. ``model.yaml`` (key
   ``fusion``) and ``README.md`` record the fitted weights, the dev data and each condition's dev
   EER per member and fused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from speakerverify import metrics
from speakerverify.embedding import load_model
from speakerverify.embedding.fusion_dir import check_member, write_fusion_dir
from speakerverify.embedding.model_dir import ModelBundle, file_sha256, write_backend
from speakerverify.models.fusion import combine
from speakerverify.scoring import cosine
from speakerverify.scoring.fit import DevCondition, fit_backend
from speakerverify.scoring.fusion import fit_fusion
from speakerverify.train.devsets import (
    DevList,
    dev_conditions,
    dev_specs,
    fitted_on,
    manifest_specs,
    speaker_cohort,
    train_utterances,
)
from speakerverify.train.recipe import load_recipe
from speakerverify.verifier import Verifier

SR = 16000


def member_embeddings(model: str, bundle: ModelBundle, conditions: list[tuple[str, DevList, list[np.ndarray]]],
                      cache_dir: Path, threads: int) -> list[np.ndarray]:
    """``bundle``'s embeddings of each condition's recordings (cached; see the module docstring)."""
    sha = file_sha256(bundle.weights_path)[:12]
    name = Path(model).name
    path = cache_dir / f"{name}-dev-{sha}.npz"
    have: dict[str, np.ndarray] = {}
    if path.is_file():
        z = np.load(path)
        have = dict(zip((str(k) for k in z["keys"]), z["embeddings"], strict=True))
    lists_cache = cache_dir / f"{name}.npz"  # scripts/embed_lists.py's whole recordings
    whole: dict[str, np.ndarray] = {}
    if lists_cache.is_file():
        z = np.load(lists_cache)
        whole = dict(zip((str(f) for f in z["files"]), z["embeddings"], strict=True))
    verifier = None
    out = []
    for cond, dev, waves in conditions:
        rows = []
        for f, w in zip(dev.files, waves, strict=True):
            key = f"{cond}|{f}"
            if key not in have:
                if waves is dev.waves and f in whole:
                    have[key] = whole[f]
                else:
                    verifier = verifier or Verifier(model, threads=threads, vad=False)
                    have[key] = verifier.embed_waves([w])[0]
            rows.append(have[key])
        out.append(np.stack(rows))
        print(f"{name}: {cond} ({len(rows)} recordings)", flush=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, keys=np.array(sorted(have)), embeddings=np.stack([have[k] for k in sorted(have)]))
    return out


def member_cohort(model: str, bundle: ModelBundle, utts: list, per_speaker: int | None, cache_dir: Path,
                  threads: int) -> np.ndarray:
    """``bundle``'s AS-norm cohort (one mean embedding per training speaker,
    :func:`speakerverify.train.devsets.speaker_cohort`), cached per weights."""
    path = cache_dir / f"{Path(model).name}-cohort-{per_speaker}-{file_sha256(bundle.weights_path)[:12]}.npy"
    if path.is_file():
        return np.load(path)
    verifier = Verifier(model, threads=threads, vad=False)
    cohort = speaker_cohort(utts, lambda waves: verifier.embed_waves(list(waves)), per_speaker)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, cohort)
    print(f"{Path(model).name}: cohort of {len(cohort)} speakers", flush=True)
    return cohort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("members", nargs="+", help="member model directories (or shipped model names), in order")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recipe", type=Path, default=Path("recipes/default-campplus-ft.yaml"),
                    help="recipe whose data.dev lists to fit on (default: the shipped default's)")
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/emb"))
    ap.add_argument("--name", default="fusion")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-asnorm", action="store_true",
                    help="skip the fused AS-norm cohort (each member embeds every training speaker's clips)")
    a = ap.parse_args()
    if len(a.members) < 2:
        sys.exit("error: a fusion needs at least two member models")
    torch.set_num_threads(a.threads)
    bundles = [load_model(m) for m in a.members]
    for b in bundles:
        check_member(b)
    recipe = load_recipe(a.recipe)
    exp = recipe.get("export") or {}
    specs, legacy = dev_specs(recipe["data"])
    conditions = dev_conditions(specs, legacy)
    embs = [member_embeddings(m, b, conditions, a.cache_dir, a.threads) for m, b in zip(a.members, bundles,
                                                                                          strict=True)]
    per_cond = []  # (name, labels, durations, [member (ea, eb)])
    for k, (cond, dev, waves) in enumerate(conditions):
        seconds = np.array([len(w) / SR for w in waves])
        durations = np.minimum(seconds[dev.ia], seconds[dev.ib])
        per_cond.append((cond, dev.labels, durations, [(e[k][dev.ia], e[k][dev.ib]) for e in embs]))
    scores = np.concatenate([np.stack([cosine(ea, eb) for ea, eb in pairs], 1) for _, _, _, pairs in per_cond])
    labels = np.concatenate([c[1] for c in per_cond])
    durations = np.concatenate([c[2] for c in per_cond])
    fit = fit_fusion(scores, labels, durations)

    fused = []
    for cond, lab, dur, pairs in per_cond:
        ea = combine([torch.from_numpy(p[0]) for p in pairs], fit.alpha).numpy()
        eb = combine([torch.from_numpy(p[1]) for p in pairs], fit.alpha).numpy()
        fused.append(DevCondition(cond, cosine(ea, eb), lab, dur, ea, eb))
    cohort = None
    if not a.no_asnorm and exp.get("asnorm", True):
        utts, _ = train_utterances(manifest_specs(recipe["data"]))
        per = exp.get("cohort_files")
        if utts:
            parts = [torch.from_numpy(member_cohort(m, b, utts, per, a.cache_dir, a.threads))
                     for m, b in zip(a.members, bundles, strict=True)]
            cohort = combine(parts, fit.alpha).numpy()
    fitted = fit_backend(fused, cohort, asnorm=cohort is not None, top_k=int(exp.get("top_k", 50)),
                         far=exp.get("far", [0.01, 0.001]), fitted_on=fitted_on(specs))
    eers = {c[0]: {Path(m).name: round(100 * metrics.eer(cosine(*p), c[1])[0], 3) for m, p in zip(a.members, c[3],
                                                                                                  strict=True)}
            for c in per_cond}
    for c in fused:
        eers[c.name]["fusion"] = round(100 * metrics.eer(c.scores, c.labels)[0], 3)

    record = {**fit.as_dict(), "features": [f"cosine({Path(m).name})" for m in a.members] + ["log(duration_s)"],
              "fitted_on": fitted_on(specs), "dev_trials": int(len(labels)), "dev_eer_percent": eers,
              "asnorm_kept": fitted.keep_cohort}
    model_dir = write_fusion_dir(a.out, bundles, fit.alpha, name=a.name, record=record)
    write_backend(model_dir, fitted.backend, cohort if fitted.keep_cohort else None)
    (model_dir / "README.md").write_text(readme(a, record, eers))
    print(f"wrote {model_dir}: alpha {fit.alpha}; dev EER % {json.dumps(eers)}")


def readme(a: argparse.Namespace, record: dict, eers: dict) -> str:
    names = [Path(m).name for m in a.members]
    lines = [f"# {a.name}: calibrated fusion of {', '.join(names)}", "",
             "Built by `python scripts/make_fusion.py " + " ".join(a.members) + f" --out {a.out} --recipe {a.recipe}`.",
             "", "Logistic fusion fitted on the pooled dev trials (" + str(record["dev_trials"]) + " trials): "
             + record["fitted_on"], "",
             "| feature | weight |", "|---|---|"]
    lines += [f"| {f} | {w:.4f} |" for f, w in zip(record["features"], record["weights"] + [record["quality_weight"]],
                                                     strict=True)]
    lines += [f"| bias | {record['bias']:.4f} |", "",
              "alpha (member weights clipped at 0, renormalised): "
              + ", ".join(f"{n} {x:.4f}" for n, x in zip(names, record["alpha"], strict=True)), "",
              "Back end (`scoring.fit.fit_backend` on the fused dev scores): duration-aware calibration and "
              "thresholds; AS-norm on the fused score with a fused cohort "
              + ("kept (it lowered the pooled dev EER)." if record["asnorm_kept"] else "not used."), "",
              "Dev EER % per condition (raw cosines; fusion: alpha-weighted cosine):", "",
              "| condition | " + " | ".join(names) + " | fusion |", "|---|" + "---|" * (len(names) + 1)]
    lines += [f"| {c} | " + " | ".join(f"{v[n]:.2f}" for n in names) + f" | {v['fusion']:.2f} |"
              for c, v in eers.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
