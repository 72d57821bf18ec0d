#!/usr/bin/env python3
"""docs/ablation.md: dev and test EER of each step toward the shipped models, from embedding caches.

Each step is a model directory; its recordings are embedded once (``scripts/embed_lists.py``,
cached under runs/emb/) and every list is scored from the cache: raw cosine, then with the step's
own back end (AS-norm where its backend.json keeps it). Dev lists pick models; test lists are
reported, never used to choose. A fusion model (``scripts/make_fusion.py``) is scored from its
members' caches (``combine`` of their embeddings with its alpha: what the fusion network computes),
so its recordings are not embedded again.

    python scripts/ablation.py --shared ../shared --step "label=MODEL_DIR" ... --out docs/ablation.md

``--section TITLE`` writes the table as the section ``## TITLE`` of ``--out`` (replacing a section
of that title, else appended) instead of rewriting the whole page.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from speakerverify import metrics
from speakerverify.data import DEV_LISTS, TEST_LISTS, read_index_pairs, read_trials
from speakerverify.scoring import ASNorm, cosine

SEED = "seed-protocol"
ALL_LISTS = DEV_LISTS + TEST_LISTS + [SEED]


def trial_pairs(shared: Path, name: str) -> tuple[list[str], list[str], np.ndarray]:
    if name == SEED:
        pairs = read_index_pairs(shared / "data/seed-protocol/test_pairs.txt")
        return ([f"seed/tes-{i:03d}" for _, i, _ in pairs], [f"seed/tes-{j:03d}" for _, _, j in pairs],
                np.array([lab for lab, _, _ in pairs]))
    trials = read_trials(shared / "data/trials" / f"{name}.txt")
    return [t.enroll for t in trials], [t.test for t in trials], np.array([t.label for t in trials])


def cached(model: Path, shared: Path, cache: Path, threads: int, vad: str | None = None,
           base: Path | None = None, names: list[str] | None = None) -> dict[str, np.ndarray]:
    lists = ["seed" if n == SEED else n for n in (names or ALL_LISTS)]
    cmd = [sys.executable, str(Path(__file__).with_name("embed_lists.py")), str(model), "--shared", str(shared),
           "--lists", *lists, "--out", str(cache), "--threads", str(threads)]
    if vad is not None:
        cmd += ["--vad", vad] + (["--base", str(base)] if base is not None and base.is_file() else [])
    subprocess.run(cmd, check=True)
    z = np.load(cache)
    return {str(f): e for f, e in zip(z["files"], z["embeddings"], strict=True)}


def fused_from_members(model: Path, shared: Path, cache_dir: Path, threads: int,
                       names: list[str] | None = None) -> dict[str, np.ndarray]:
    """A fusion model's embeddings composed from its members' caches (embedding members not cached yet)."""
    import torch
    import yaml

    from speakerverify.models.fusion import combine

    record = yaml.safe_load((model / "model.yaml").read_text())["fusion"]
    members = [Path(m["model"]) for m in record["members"]]
    embs = [cached(m, shared, cache_dir / f"{m.name}.npz", threads, names=names) for m in members]
    return {k: combine([torch.from_numpy(e[k][None]) for e in embs], record["alpha"])[0].numpy() for k in embs[0]}


def is_fusion(model: Path) -> bool:
    import yaml

    path = model / "model.yaml"
    return path.is_file() and yaml.safe_load(path.read_text()).get("arch") == "fusion"


def write_section(out: Path, title: str, lines: list[str]) -> None:
    """``lines`` as the section ``## title`` of ``out``: replaces that section, else appended."""
    text = out.read_text() if out.is_file() else ""
    head = f"## {title}"
    body = "\n".join([head, "", *lines]).rstrip() + "\n"
    if head in text:
        before, _, rest = text.partition(head)
        nxt = rest.find("\n## ")
        text = before + body + ("" if nxt < 0 else rest[nxt:])
    else:
        text = text.rstrip() + "\n\n" + body
    out.write_text(text)


def step_eers(model: Path, emb: dict[str, np.ndarray], shared: Path,
              names: list[str] | None = None) -> dict[str, tuple[float, float | None]]:
    """EER % per list: (raw cosine, with the model's AS-norm or None when its back end has none)."""
    import json

    backend = json.loads((model / "backend.json").read_text()) if (model / "backend.json").is_file() else {}
    asn = None
    if backend.get("asnorm") and (model / "cohort.npy").is_file():
        asn = ASNorm(np.load(model / "cohort.npy").astype(np.float32), backend["asnorm"].get("top_k", 100))
    out = {}
    for name in names or ALL_LISTS:
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
    ap.add_argument("--lists", nargs="+", choices=ALL_LISTS, default=ALL_LISTS,
                    help="score only these lists (default: every dev and test list and the seed protocol)")
    ap.add_argument("--section", help="write the table as this section of --out instead of the whole page")
    a = ap.parse_args()
    rows = []
    for spec in a.step:
        label, _, target = spec.partition("=")
        model, _, vad = target.partition("|")
        model_dir = Path(model)
        base = a.cache_dir / f"{model_dir.name}.npz"
        if is_fusion(model_dir) and not vad:
            emb = fused_from_members(model_dir, a.shared, a.cache_dir, a.threads, a.lists)
        elif vad:
            tag = hashlib.sha256(vad.encode()).hexdigest()[:8]
            emb = cached(model_dir, a.shared, a.cache_dir / f"{model_dir.name}-vad-{tag}.npz", a.threads, vad, base,
                         a.lists)
        else:
            emb = cached(model_dir, a.shared, base, a.threads, names=a.lists)
        eers = step_eers(model_dir, emb, a.shared, a.lists)
        rows.append((label, "raw cosine", {k: v[0] for k, v in eers.items()}))
        if any(v[1] is not None for v in eers.values()):
            rows.append((label, "+ its AS-norm", {k: v[1] for k, v in eers.items()}))
    cols = [n for n in ALL_LISTS if n in a.lists]
    table = ["| step | scoring | mean dev | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for label, how, eers in rows:
        mean_dev = np.mean([eers[k] for k in DEV_LISTS if k in eers])
        table.append(f"| {label} | {how} | {mean_dev:.2f} | " + " | ".join(f"{eers[k]:.2f}" for k in cols) + " |")
    command = "python scripts/ablation.py " + " ".join(f"--step {shlex.quote(s)}" for s in a.step)
    if a.lists != ALL_LISTS:
        command += " --lists " + " ".join(a.lists)
    if a.section:
        command += f" --section {shlex.quote(a.section)}"
    table += ["", "```", command, "```", ""]
    if a.section:
        write_section(a.out, a.section, table)
        print("\n".join(table))
        return
    lines = ["# Ablation: what each step toward the shipped models changed", "",
             "EER % on every dev list (used for choices) and test list (reported only), from "
             "`python scripts/ablation.py` (command below). Mean dev EER is the model-choice rule.", "", *table]
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
