"""Calibration: raw scores to log-likelihood ratios (natural log), optionally duration-aware."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from speakerverify.errors import OperatingPointError


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
        # Imported here, not at the top: applying a calibration (every verify, every service worker)
        # needs only numpy, and scikit-learn costs about a second and 90 MB per process to import.
        from sklearn.linear_model import LogisticRegression

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
            raise OperatingPointError("calibration is not increasing in the score at this duration")
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
