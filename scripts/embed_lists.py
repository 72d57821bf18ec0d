#!/usr/bin/env python3
"""Embed every recording of some trial lists (and the seed protocol) once with a model; cache.

Writes ``OUT.npz`` with ``files`` (paths relative to the data folder, ``seed/tes-NNN`` for the
seed protocol's rows), ``embeddings`` and ``durations``. The ablation and benchmark scripts score
every list and back-end variant from such caches.

    python scripts/embed_lists.py MODEL --shared ../shared --lists libri-train-clean-dev ... --out emb.npz

``--vad JSON`` embeds under another speech-activity policy than the model's own (``off``, or the
keys of :class:`speakerverify.audio.vad.VadConfig`, e.g. ``'{"min_input_s": 3}'``); with ``--base
CACHE`` (the same model's cache without VAD), a recording the policy leaves whole reuses its
embedding there instead of being embedded again (same samples, same embedding). Durations are
those of what is embedded (the speech, under VAD), as the calibration sees them. Every recording
is embedded as given when the detector finds no speech in it: lists are scored whole.

A cache records the digest of the weights that made it (``model``); a cache of other weights (a
model directory retrained or re-shipped under the same name) is discarded and embedded again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from speakerverify.audio import SAMPLE_RATE, check_waveform, load_audio
from speakerverify.audio.vad import VadConfig
from speakerverify.data import from_seed_pickle, read_trials
from speakerverify.train.distributed import weights_digest
from speakerverify.verifier import Verifier


def embedding_digest(v: Verifier) -> str:
    """What identifies the embeddings a model gives: its config and weights, not its name."""
    config = {k: x for k, x in v.bundle.config.items() if k not in ("name", "version")}
    weights = weights_digest([v.bundle.frontend, v.bundle.network])
    return hashlib.sha256((json.dumps(config, sort_keys=True, default=str) + weights).encode()).hexdigest()[:16]


def load_cache(path: Path, digest: str) -> np.lib.npyio.NpzFile | None:
    if not path.is_file():
        return None
    z = np.load(path)
    if "model" not in z.files or str(z["model"]) != digest:
        print(f"{path}: made by other weights; not reused", flush=True)
        return None
    return z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--lists", nargs="+", required=True, help="trial list names (trials/NAME.txt), or 'seed'")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vad", help="speech-activity policy: 'off' or a VadConfig JSON (default: the model's)")
    ap.add_argument("--base", type=Path, help="cache of the same model without VAD, reused for untouched recordings")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = a.shared / "data"
    vad = None if a.vad is None else False if a.vad == "off" else VadConfig.from_dict(json.loads(a.vad))
    v = Verifier(a.model, threads=a.threads, vad=vad)
    digest = embedding_digest(v)
    base: dict[str, np.ndarray] = {}
    z = None if a.base is None else load_cache(a.base, digest)
    if z is not None:
        base = {str(f): e for f, e in zip(z["files"], z["embeddings"], strict=True)}
    have: dict[str, tuple[np.ndarray, float]] = {}
    old = load_cache(a.out, digest)
    if old is not None:
        have = {str(f): (e, float(d)) for f, e, d in zip(old["files"], old["embeddings"], old["durations"],
                                                         strict=True)}
    waves: dict[str, np.ndarray] = {}
    for name in a.lists:
        if name == "seed":
            for i, u in enumerate(from_seed_pickle(data / "seed-protocol/tes.pkl")):
                waves[f"seed/tes-{i:03d}"] = check_waveform(u.wave, u.key, v.bundle.min_duration_s,
                                                            reject_silence=False)
            continue
        for t in read_trials(data / "trials" / f"{name}.txt"):
            for f in (t.enroll, t.test):
                if f not in have and f not in waves:
                    waves[f] = load_audio(data / f, min_duration_s=v.bundle.min_duration_s)
    todo = [f for f in waves if f not in have]
    reused = 0
    for k, f in enumerate(todo):
        speech = v.speech(waves[f], f, strict=False)
        if speech.size == waves[f].size and f in base:
            have[f] = (base[f], speech.size / SAMPLE_RATE)
            reused += 1
        else:
            have[f] = (v.embed_waves([speech])[0], speech.size / SAMPLE_RATE)
        if k % 200 == 0:
            print(f"{k}/{len(todo)}", flush=True)
    files = sorted(have)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(a.out, files=np.array(files), embeddings=np.stack([have[f][0] for f in files]),
             durations=np.array([have[f][1] for f in files]), model=np.array(digest))
    print(f"{a.out}: {len(files)} recordings ({reused} unchanged by the VAD policy, reused from {a.base})")


if __name__ == "__main__":
    main()
