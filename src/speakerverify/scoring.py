"""Scoring and decision: cosine scores, AS-norm, logistic calibration and operating points.

A model's ``backend.json`` holds::

    {"asnorm": {"top_k": 100},            # optional; cohort embeddings in cohort.npy beside it
     "calibration": {"a": 7.1, "b": -3.2},  # llr = a * score + b (natural log); see Calibration
                                           # for the duration-aware form (c, d, duration_range_s)
     "thresholds": {"eer": 0.41, "far": {"0.01": 0.52, "0.001": 0.61}}}
                                           # "domain": "llr": the points are LLRs
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


def _log_duration(durations, q_range: tuple[float, float], n: int) -> np.ndarray:
    """q = log(duration) clipped to ``q_range``; an unknown duration (None) counts as the longest."""
    lo, hi = q_range
    dur = np.full(n, hi) if durations is None else np.broadcast_to(np.asarray(durations, np.float64), (n,))
    return np.log(np.clip(dur, lo, hi))


@dataclass
class Calibration:
    """Logistic calibration to a log-likelihood ratio (natural log), prior-independent.

    Plain: ``llr = a * score + b``. Duration-aware (fitted when the dev trials span several
    durations): with ``q = log(duration)``, ``duration`` the shorter side of the trial in seconds
    clipped to ``q_range`` (the durations the fit saw: it never extrapolates),
    ``llr = (a + d * q) * score + b + c * q`` -- a 1-s phone clip and a 4-s clean one with the same
    cosine score do not carry the same evidence. A trial of unknown duration counts as the longest.
    """

    a: float
    b: float
    c: float = 0.0
    d: float = 0.0
    q_range: tuple[float, float] | None = None

    @classmethod
    def fit(cls, scores, labels, durations=None, p_target: float = 0.5) -> Calibration:
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels).astype(int)
        q_range = None
        if durations is not None:
            dur = np.asarray(durations, dtype=np.float64)
            lo, hi = float(dur.min()), float(dur.max())
            q_range = (lo, hi) if hi > 1.5 * lo else None  # one duration: nothing to learn from it
        x = s[:, None]
        if q_range is not None:
            q = _log_duration(dur, q_range, len(dur))
            x = np.c_[s, q, s * q]
        # Weight classes so the fit targets p_target, then remove the prior log-odds (BOSARIS style).
        w = np.where(y == 1, p_target / y.sum(), (1 - p_target) / (len(y) - y.sum())) * len(y)
        lr = LogisticRegression(C=1e6, max_iter=2000).fit(x, y, sample_weight=w)
        coef = lr.coef_[0]
        b = float(lr.intercept_[0] - math.log(p_target / (1 - p_target)))
        if q_range is None:
            return cls(float(coef[0]), b)
        slopes = coef[0] + coef[2] * _log_duration(q_range, q_range, 2)  # linear in q: the ends suffice
        if np.any(slopes <= 0):  # a higher score must never mean less evidence: fall back to plain
            return cls.fit(s, y, None, p_target)
        return cls(float(coef[0]), b, float(coef[1]), float(coef[2]), q_range)

    def _q(self, durations, n: int) -> np.ndarray:
        return np.zeros(n) if self.q_range is None else _log_duration(durations, self.q_range, n)

    def llr(self, scores, durations=None) -> np.ndarray:
        """LLR of each score; ``durations`` (seconds, the shorter side of each trial) where the
        calibration is duration-aware."""
        s = np.asarray(scores, dtype=np.float64)
        q = self._q(durations, s.size).reshape(s.shape)
        return (self.a + self.d * q) * s + self.b + self.c * q

    def score_at(self, llr: float, durations=None, n: int = 1) -> np.ndarray:
        """The scores whose LLR is ``llr`` at these durations (the inverse of :meth:`llr`)."""
        q = self._q(durations, n if durations is None else np.size(durations))
        slope = self.a + self.d * q
        if np.any(slope <= 0):
            raise ValueError("calibration is not increasing in the score at this duration")
        return (llr - self.b - self.c * q) / slope

    def probability(self, scores, durations=None, prior: float = 0.5) -> np.ndarray:
        """Posterior probability of 'same speaker' at the given prior."""
        logit = self.llr(scores, durations) + math.log(prior / (1 - prior))
        return 1.0 / (1.0 + np.exp(-logit))

    def as_dict(self) -> dict:
        out: dict = {"a": self.a, "b": self.b}
        if self.q_range is not None:
            out.update(c=self.c, d=self.d, duration_range_s=list(self.q_range))
        return out

    @classmethod
    def from_dict(cls, cal: dict) -> Calibration:
        q = cal.get("duration_range_s")
        return cls(float(cal["a"]), float(cal["b"]), float(cal.get("c", 0.0)), float(cal.get("d", 0.0)),
                   (float(q[0]), float(q[1])) if q else None)


class Backend:
    """What a model directory's ``backend.json`` says about turning embeddings into decisions."""

    def __init__(self, config: dict | None, cohort: np.ndarray | None = None) -> None:
        self.config = config or {}
        cal = self.config.get("calibration")
        self.calibration = Calibration.from_dict(cal) if cal else None
        asn = self.config.get("asnorm")
        self.asnorm = ASNorm(cohort, asn.get("top_k", 100)) if asn and cohort is not None else None
        self.thresholds = self.config.get("thresholds", {})

    def threshold(self, far: float | None = None, duration_s: float | None = None) -> float:
        """The score threshold: the dev equal-error point, or the point at false-accept rate ``far``.

        With ``"domain": "llr"`` the operating points are LLRs (set on the dev conditions pooled,
        after duration-aware calibration): the score threshold then depends on the shorter
        recording's length (``duration_s``; unknown counts as the longest the calibration saw), so
        a 4-s clean trial is not held to the bar that 1-s phone clips' scores set."""
        return float(self.thresholds_for(None if duration_s is None else [duration_s], far)[0])

    def thresholds_for(self, durations=None, far: float | None = None) -> np.ndarray:
        """Score thresholds for trials of these durations (seconds, the shorter side of each)."""
        n = 1 if durations is None else int(np.size(durations))
        if far is None:
            point = float(self.thresholds.get("eer", 0.5))
        else:
            points = self.thresholds.get("far", {})
            if not points:
                raise ValueError("this model has no false-accept operating points; use the default threshold")
            key = min(points, key=lambda k: abs(math.log(float(k)) - math.log(far)))
            if not math.isclose(float(key), far, rel_tol=1e-6):
                raise ValueError(f"no operating point at FAR {far}; available: {', '.join(sorted(points))}")
            point = float(points[key])
        if self.thresholds.get("domain") != "llr":
            return np.full(n, point)
        if self.calibration is None:
            raise ValueError("LLR operating points need a calibration in backend.json")
        return self.calibration.score_at(point, durations, n)

    def decide(self, score: float, far: float | None = None, duration_s: float | None = None,
               threshold: float | None = None) -> dict:
        """The decision for one score; ``duration_s`` (the shorter recording's length) feeds a
        duration-aware calibration's llr and probability and LLR operating points. ``threshold``
        (a score) overrides the operating point."""
        thr = self.threshold(far, duration_s) if threshold is None else float(threshold)
        out = {"score": float(score), "same_speaker": bool(score >= thr), "threshold": thr}
        if self.calibration is not None:
            out["llr"] = float(self.calibration.llr(score, duration_s))
            out["probability"] = float(self.calibration.probability(score, duration_s))
        return out
