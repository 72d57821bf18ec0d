"""Both shipped models (`default`, `fast`): small enough for the repository, float16 learned weights, and
they tell held-out LibriSpeech speakers apart with their own back end."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from speakerverify.verifier import Verifier

PRETRAINED = Path(__file__).resolve().parents[1] / "src" / "speakerverify" / "pretrained"


@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_model_is_small_and_half_precision(name):
    folder = PRETRAINED / name
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 25e6, f"{name}: {size / 1e6:.1f} MB"
    weights = torch.load(folder / "model.pt", map_location="cpu")
    learned = [t for k, t in weights.items() if t.is_floating_point() and "running_" not in k]
    stats = [t for k, t in weights.items() if "running_" in k]
    assert learned and all(t.dtype == torch.float16 for t in learned)
    assert all(t.dtype == torch.float32 for t in stats)  # BatchNorm statistics keep float32 (half_weights)


@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_model_separates_held_out_speakers(name, test_speaker_clips):
    v = Verifier(name, threads=1)
    assert v.model_ident.startswith(f"{name}@")
    speakers = list(test_speaker_clips)[:4]
    clips = {s: test_speaker_clips[s][:3] for s in speakers}
    emb = {s: np.stack([v.embed(p) for p in ps]) for s, ps in clips.items()}
    same = [v.score_embeddings(e[i:i + 1], e[j:j + 1])[0] for e in emb.values()
            for i, j in itertools.combinations(range(len(e)), 2)]
    diff = [v.score_embeddings(emb[a][i:i + 1], emb[b][j:j + 1])[0]
            for a, b in itertools.combinations(speakers, 2) for i in range(3) for j in range(3)]
    # Every same-speaker pair above the median different-speaker pair, and most above every one.
    assert min(same) > np.median(diff), (min(same), np.median(diff))
    assert np.mean(np.array(same)[:, None] > np.array(diff)[None, :]) > 0.95
