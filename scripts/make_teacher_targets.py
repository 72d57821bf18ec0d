#!/usr/bin/env python3
"""Precompute teacher embeddings for distillation (run once before training the default model).

Writes speed-perturbed copies of the TRAIN-split clips of libri-train-clean to a cache folder
(never into the repository), then embeds every copy with a pretrained peer model through
../shared/peers/peers.py (run in the peers' own environment, so speakerverify never imports
them). Output: ``<cache>/teacher-<model>.npz`` with ``files`` (relative to the cache folder),
``embeddings``, ``speakers``, ``factors`` and ``sources``.

    python scripts/make_teacher_targets.py --shared ../shared --model campplus
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from speakerverify.data import from_manifest  # noqa: E402

FACTORS = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)


def speed_perturb(x: np.ndarray, factor: float, sr: int = 16000) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (tempo and pitch together, as Kaldi's speed perturbation)."""
    if factor == 1.0:
        return x
    return soxr.resample(x, sr * factor, sr).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--model", default="campplus")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/speakerverify/distill"))
    ap.add_argument("--peers-venv", default=os.environ.get(
        "SPEAKERVERIFY_PEERS_VENV", os.path.expanduser("~/.cache/speakerverify-peers/venv")))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=300)
    a = ap.parse_args()
    shared, cache = Path(a.shared).resolve(), Path(a.cache)
    utts = from_manifest(shared / "data/corpora/libri-train-clean/manifest.csv", splits=["train"])
    rows = []
    for u in utts:
        x, sr = sf.read(u.path, dtype="float32")
        assert sr == 16000
        for f in FACTORS:
            rel = f"audio/{u.speaker}/{Path(u.key).stem}-sp{f:.2f}.flac"
            out = cache / rel
            if not out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                sf.write(out, speed_perturb(x, f), 16000)
            rows.append({"file": rel, "speaker": u.speaker, "factor": f, "source": u.key})
    print(f"{len(rows)} perturbed clips from {len(utts)} train clips in {cache}", file=sys.stderr)
    python = Path(a.peers_venv) / "bin/python"
    if not python.exists():
        sys.exit(f"error: {python}: peers environment missing; run bash {shared}/peers/setup.sh")
    files = [r["file"] for r in rows]
    parts = []
    # Embed in chunks so an interrupted run resumes where it stopped.
    for k in range(0, len(files), a.chunk):
        part = cache / "parts" / f"{a.model}-{k // a.chunk:04d}.npz"
        parts.append(part)
        if part.exists():
            continue
        part.parent.mkdir(exist_ok=True)
        listing = cache / "parts" / f"{a.model}-{k // a.chunk:04d}.txt"
        listing.write_text("".join(f + "\n" for f in files[k:k + a.chunk]))
        tmp = part.with_suffix(".tmp.npz")
        subprocess.run([str(python), str(shared / "peers/peers.py"), "embed", "--model", a.model, "--root",
                        str(cache), "--list", str(listing), "--out", str(tmp), "--threads", str(a.threads)],
                       check=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        tmp.replace(part)
        print(f"{min(k + a.chunk, len(files))}/{len(files)} embedded", file=sys.stderr)
    got_files = np.concatenate([np.load(p)["files"] for p in parts])
    got_emb = np.concatenate([np.load(p)["embeddings"] for p in parts])
    assert list(got_files) == files
    out = cache / f"teacher-{a.model}.npz"
    np.savez(out, files=got_files, embeddings=got_emb.astype(np.float32),
             speakers=np.array([r["speaker"] for r in rows]), factors=np.array([r["factor"] for r in rows]),
             sources=np.array([r["source"] for r in rows]))
    print(json.dumps({"out": str(out), "n": len(rows), "model": a.model}))


if __name__ == "__main__":
    main()
