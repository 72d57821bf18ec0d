"""Logistic score fusion: member scores and a quality term -> one LLR; the member weights as alpha.

:func:`fit_fusion` fits one logistic regression on pooled dev trials, with features each member's
score and ``q = log(duration)`` (the shorter side's speech in seconds, clipped to the dev range),
class-weighted to a 0.5 prior as :class:`~speakerverify.scoring.calibration.Calibration` is:
``llr = sum_i w_i s_i + v q + b``. The member weights become the fusion's ``alpha``: negative
weights (a member that only adds noise given the others) are clipped to 0 and the rest
renormalised to sum to 1, so ``sum_i alpha_i s_i`` is the fused score a
:class:`~speakerverify.models.fusion.Fusion` embedding's cosine gives. The back end (calibration
with its own duration term, thresholds) is then fitted on that fused score by
:func:`speakerverify.scoring.fit.fit_backend`, the one back-end fitter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from speakerverify.errors import DataError


@dataclass
class FusionFit:
    """``weights`` (per member, as fitted), ``quality`` (the weight of q), ``bias``, ``q_range``
    (the dev durations' range in seconds) and ``alpha`` (clipped, renormalised weights)."""

    weights: list[float]
    quality: float
    bias: float
    q_range: tuple[float, float]
    alpha: list[float]

    def llr(self, scores: np.ndarray, durations: np.ndarray) -> np.ndarray:
        """The logistic fusion's LLR of trials ``scores`` (N, M) of ``durations`` (N,)."""
        q = np.log(np.clip(durations, *self.q_range))
        return np.asarray(scores, np.float64) @ np.asarray(self.weights) + self.quality * q + self.bias

    def as_dict(self) -> dict:
        return {"weights": [round(w, 6) for w in self.weights], "quality_weight": round(self.quality, 6),
                "bias": round(self.bias, 6), "duration_range_s": [round(x, 3) for x in self.q_range],
                "alpha": [round(a, 6) for a in self.alpha]}


def alpha_from_weights(weights: Sequence[float]) -> list[float]:
    """Member weights clipped at 0 and renormalised to sum to 1."""
    w = np.clip(np.asarray(weights, np.float64), 0.0, None)
    if w.sum() <= 0:
        raise DataError("fusion: no member has a positive weight on dev (every member's score is uninformative)")
    return [float(x) for x in w / w.sum()]


def fit_fusion(scores: np.ndarray, labels: np.ndarray, durations: np.ndarray, p_target: float = 0.5) -> FusionFit:
    """Fit the logistic fusion on pooled dev trials: ``scores`` (N, M) member scores, ``labels``
    (N,) 1 = same speaker, ``durations`` (N,) seconds (see the module docstring)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(int)
    dur = np.asarray(durations, np.float64)
    if s.ndim != 2 or s.shape[0] != len(y) or len(dur) != len(y):
        raise DataError(f"fusion: scores {s.shape}, labels {len(y)} and durations {len(dur)} do not match")
    if y.min() == y.max():
        raise DataError("fusion: the dev trials need both target and non-target trials")
    q_range = (float(dur.min()), float(dur.max()))
    x = np.c_[s, np.log(np.clip(dur, *q_range))]
    w = np.where(y == 1, p_target / y.sum(), (1 - p_target) / (len(y) - y.sum())) * len(y)
    lr = LogisticRegression(C=1e6, max_iter=5000).fit(x, y, sample_weight=w)
    coef = [float(c) for c in lr.coef_[0]]
    bias = float(lr.intercept_[0] - math.log(p_target / (1 - p_target)))
    return FusionFit(coef[:-1], coef[-1], bias, q_range, alpha_from_weights(coef[:-1]))
