"""Similarity of embeddings: cosine, and AS-norm (adaptive symmetric score normalisation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays (or two vectors)."""
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


@dataclass
class ASNorm:
    """Adaptive symmetric score normalisation (Matejka et al. 2017) with a top-k cohort."""

    cohort: np.ndarray
    top_k: int = 100

    def __post_init__(self) -> None:
        self.cohort = l2_normalize(self.cohort)
        self.top_k = int(min(self.top_k, len(self.cohort)))

    def _stats(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims = l2_normalize(emb) @ self.cohort.T
        top = -np.partition(-sims, self.top_k - 1, axis=-1)[..., : self.top_k]
        return top.mean(-1), np.maximum(top.std(-1), 1e-6)

    def __call__(self, enroll: np.ndarray, test: np.ndarray, raw: np.ndarray | None = None) -> np.ndarray:
        raw = cosine(enroll, test) if raw is None else raw
        me, se = self._stats(enroll)
        mt, st = self._stats(test)
        return 0.5 * ((raw - me) / se + (raw - mt) / st)
