"""A tiny Verifier without a model: embeddings are a coarse spectrum of the clip.

Used by the store tests that check storage, crash safety and model bookkeeping, which must not
depend on how good the shipped model is. Clips of one sine frequency embed alike; other
frequencies embed far away.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from speakerverify.scoring import Backend, l2_normalize
from speakerverify.verifier import Verifier

DIM = 32


class StubVerifier(Verifier):
    """Verifier's own loading, verification and scoring; only the embedding is stubbed."""

    def __init__(self, version: str = "1", min_duration_s: float = 0.5, flip: bool = False) -> None:
        self.bundle = SimpleNamespace(two_branch=False, min_duration_s=min_duration_s, network=None,
                                      name="stub", ident=f"stub@{version}")
        self.backend = Backend({"thresholds": {"eer": 0.5}})
        self.flip = flip  # a different "model": permuted embedding space
        self.embedded = 0

    def embed_waves(self, waves, second=False, batch_size=1):
        out = []
        for w in waves:
            spec = np.abs(np.fft.rfft(w[:16000] if len(w) >= 16000 else np.pad(w, (0, 16000 - len(w)))))
            bins = np.array([b.sum() for b in np.array_split(spec[:8000], DIM)], dtype=np.float32)
            e = l2_normalize(bins - bins.mean())
            out.append(e[::-1].copy() if self.flip else e)
        self.embedded += len(waves)
        return np.stack(out).astype(np.float32)


def tone(freq: float, seconds: float = 1.0, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)
