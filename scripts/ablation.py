#!/usr/bin/env python3
"""docs/ablation.md: dev and test EER of each step toward the shipped models, from embedding caches.

Each step is a model directory; its recordings are embedded once (``scripts/embed_lists.py``,
cached under runs/emb/) and every list is scored from the cache: raw cosine, then with the step's
own back end (AS-norm where its backend.json keeps it). Dev lists pick models; test lists are
reported, never used to choose.

    python scripts/ablation.py --shared ../shared --step "label=MODEL_DIR" ... --out docs/ablation.md
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np

from speakerverify import metrics
from speakerverify.data import read_index_pairs, read_trials
from speakerverify.scoring import ASNorm, cosine

DEV = ["libri-train-clean-dev", "speechocean762-dev", "speech-commands-dev"]
TEST = ["libri-train-clean-test", "libri-test-other-test", "fsdd-test", "speechocean762-test",
        "speech-commands-test", "dspspeech20-test", "dspspeech20-crosslang-test"]
SEED = "seed-protocol"


def trial_pairs(shared: Path, name: str) -> tuple[list[str], list[str], np.ndarray]:
    if name == SEED:
        pairs = read_index_pairs(shared / "data/seed-protocol/test_pairs.txt")
        return ([f"seed/tes-{i:03d}" for _, i, _ in pairs], [f"seed/tes-{j:03d}" for _, _, j in pairs],
                np.array([lab for lab, _, _ in pairs]))
    trials = read_trials(shared / "data/trials" / f"{name}.txt")
    return [t.enroll for t in trials], [t.test for t in trials], np.array([t.label for t in trials])


def cached(model: Path, shared: Path, cache: Path, threads: int, vad: str | None = None,
           base: Path | None = None) -> dict[str, np.ndarray]:
    lists = DEV + TEST + ["seed"]
    cmd = [sys.executable, str(Path(__file__).with_name("embed_lists.py")), str(model), "--shared", str(shared),
           "--lists", *lists, "--out", str(cache), "--threads", str(threads)]
    if vad is not None:
        cmd += ["--vad", vad] + (["--base", str(base)] if base is not None and base.is_file() else [])
    subprocess.run(cmd, check=True)
    z = np.load(cache)
    return {str(f): e for f, e in zip(z["files"], z["embeddings"], strict=True)}


def step_eers(model: Path, emb: dict[str, np.ndarray], shared: Path) -> dict[str, tuple[float, float | None]]:
    """EER % per list: (raw cosine, with the model's AS-norm or None when its back end has none)."""
    import json

    backend = json.loads((model / "backend.json").read_text()) if (model / "backend.json").is_file() else {}
    asn = None
    if backend.get("asnorm") and (model / "cohort.npy").is_file():
        asn = ASNorm(np.load(model / "cohort.npy").astype(np.float32), backend["asnorm"].get("top_k", 100))
    out = {}
    for name in DEV + TEST + [SEED]:
        ea_keys, eb_keys, labels = trial_pairs(shared, name)
        ea = np.stack([emb[k] for k in ea_keys])
        eb = np.stack([emb[k] for k in eb_keys])
        raw = cosine(ea, eb)
        out[name] = (100 * metrics.eer(raw, labels)[0], None if asn is None else 100 * metrics.eer(asn(ea, eb, raw),
                                                                                                    labels)[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--step", action="append", required=True,
                    help="LABEL=MODEL_DIR, in order; LABEL=MODEL_DIR|VAD embeds under a speech-activity "
                         "policy (embed_lists.py --vad: 'off' or a VadConfig JSON)")
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/emb"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("docs/ablation.md"))
    a = ap.parse_args()
    rows = []
    for spec in a.step:
        label, _, target = spec.partition("=")
        model, _, vad = target.partition("|")
        model_dir = Path(model)
        base = a.cache_dir / f"{model_dir.name}.npz"
        if vad:
            tag = hashlib.sha256(vad.encode()).hexdigest()[:8]
            emb = cached(model_dir, a.shared, a.cache_dir / f"{model_dir.name}-vad-{tag}.npz", a.threads, vad, base)
        else:
            emb = cached(model_dir, a.shared, base, a.threads)
        eers = step_eers(model_dir, emb, a.shared)
        rows.append((label, "raw cosine", {k: v[0] for k, v in eers.items()}))
        if any(v[1] is not None for v in eers.values()):
            rows.append((label, "+ its AS-norm", {k: v[1] for k, v in eers.items()}))
    cols = DEV + TEST + [SEED]
    lines = ["# Ablation: what each step toward the shipped models changed", "",
             "EER % on every dev list (used for choices) and test list (reported only), from "
             "`python scripts/ablation.py` (command below). Mean dev EER is the model-choice rule.", "",
             "| step | scoring | mean dev | " + " | ".join(cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for label, how, eers in rows:
        mean_dev = np.mean([eers[k] for k in DEV])
        lines.append(f"| {label} | {how} | {mean_dev:.2f} | " + " | ".join(f"{eers[k]:.2f}" for k in cols) + " |")
    lines += ["", "```", "python scripts/ablation.py " + " ".join(f'--step "{s}"' for s in a.step), "```", ""]
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
