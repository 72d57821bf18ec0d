"""Scoring and decision: cosine scores, AS-norm, logistic calibration and operating points.

A model's ``backend.json`` holds::

    {"asnorm": {"top_k": 100},            # optional; cohort embeddings in cohort.npy beside it
     "calibration": {"a": 7.1, "b": -3.2},  # llr = a * score + b (natural log)
     "thresholds": {"eer": 0.41, "far": {"0.01": 0.52, "0.001": 0.61}}}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression


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


@dataclass
class Calibration:
    """Linear logistic calibration: llr = a * score + b (natural log), prior-independent."""

    a: float
    b: float

    @classmethod
    def fit(cls, scores, labels, p_target: float = 0.5) -> Calibration:
        s = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
        y = np.asarray(labels).astype(int)
        # Weight classes so the fit targets p_target, then remove the prior log-odds (BOSARIS style).
        w = np.where(y == 1, p_target / y.sum(), (1 - p_target) / (len(y) - y.sum())) * len(y)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(s, y, sample_weight=w)
        logit_prior = math.log(p_target / (1 - p_target))
        return cls(float(lr.coef_[0, 0]), float(lr.intercept_[0] - logit_prior))

    def llr(self, scores) -> np.ndarray:
        return self.a * np.asarray(scores, dtype=np.float64) + self.b

    def probability(self, scores, prior: float = 0.5) -> np.ndarray:
        """Posterior probability of 'same speaker' at the given prior."""
        logit = self.llr(scores) + math.log(prior / (1 - prior))
        return 1.0 / (1.0 + np.exp(-logit))

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b}


class Backend:
    """What a model directory's ``backend.json`` says about turning embeddings into decisions."""

    def __init__(self, config: dict | None, cohort: np.ndarray | None = None) -> None:
        self.config = config or {}
        cal = self.config.get("calibration")
        self.calibration = Calibration(cal["a"], cal["b"]) if cal else None
        asn = self.config.get("asnorm")
        self.asnorm = ASNorm(cohort, asn.get("top_k", 100)) if asn and cohort is not None else None
        self.thresholds = self.config.get("thresholds", {})

    def threshold(self, far: float | None = None) -> float:
        if far is None:
            return float(self.thresholds.get("eer", 0.5))
        points = self.thresholds.get("far", {})
        if not points:
            raise ValueError("this model has no false-accept operating points; use the default threshold")
        key = min(points, key=lambda k: abs(math.log(float(k)) - math.log(far)))
        if not math.isclose(float(key), far, rel_tol=1e-6):
            raise ValueError(f"no operating point at FAR {far}; available: {', '.join(sorted(points))}")
        return float(points[key])

    def decide(self, score: float, far: float | None = None) -> dict:
        thr = self.threshold(far)
        out = {"score": float(score), "same_speaker": bool(score >= thr), "threshold": thr}
        if self.calibration is not None:
            out["llr"] = float(self.calibration.llr(score))
            out["probability"] = float(self.calibration.probability(score))
        return out
