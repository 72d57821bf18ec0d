"""A tiny stand-in for Verifier (no torch, no model): embeddings are a coarse spectrum of the clip.

Used by the store tests that check storage, crash safety and model bookkeeping, which must not
depend on how good the shipped model is. Clips of one sine frequency embed alike; other
frequencies embed far away.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from speakerverify.audio import check_waveform, load_audio
from speakerverify.scoring import Backend, cosine, l2_normalize

DIM = 32


class StubVerifier:
    def __init__(self, version: str = "1", min_duration_s: float = 0.5, flip: bool = False) -> None:
        self.model_name = "stub"
        self.model_ident = f"stub@{version}"
        self.bundle = SimpleNamespace(two_branch=False, min_duration_s=min_duration_s)
        self.backend = Backend({"thresholds": {"eer": 0.5}})
        self.flip = flip  # a different "model": permuted embedding space
        self.embedded = 0

    def load(self, x, name=None):
        if isinstance(x, np.ndarray):
            return check_waveform(x, name or "<array>", self.bundle.min_duration_s)
        return load_audio(x, min_duration_s=self.bundle.min_duration_s, name=name)

    def embed_waves(self, waves, second=False, batch_size=1):
        out = []
        for w in waves:
            spec = np.abs(np.fft.rfft(w[:16000] if len(w) >= 16000 else np.pad(w, (0, 16000 - len(w)))))
            bins = np.array([b.sum() for b in np.array_split(spec[:8000], DIM)], dtype=np.float32)
            e = l2_normalize(bins - bins.mean())
            out.append(e[::-1].copy() if self.flip else e)
        self.embedded += len(waves)
        return np.stack(out).astype(np.float32)

    def embed(self, x, name=None, second=False):
        return self.embed_waves([self.load(x, name)])[0]

    def score_embeddings(self, ea, eb):
        return cosine(np.atleast_2d(ea), np.atleast_2d(eb))


def tone(freq: float, seconds: float = 1.0, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)
