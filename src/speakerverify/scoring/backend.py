"""The back end at run time: a model's ``backend.json`` turned into scores, LLRs and decisions.

A model's ``backend.json`` holds::

    {"asnorm": {"top_k": 100},            # optional; cohort embeddings in cohort.npy beside it
     "calibration": {"a": 7.1, "b": -3.2},  # llr = a * score + b (natural log); see Calibration
                                           # for the duration-aware form (c, d, duration_range_s)
     "thresholds": {"eer": 0.41, "far": {"0.01": 0.52, "0.001": 0.61}}}
                                           # "domain": "llr": the points are LLRs

It is written by :func:`speakerverify.scoring.fit.fit_backend`. Decisions: 1:1 (:meth:`Backend.decide`
at the equal-error or a false-accept operating point) and open-set identification
(:meth:`Backend.identify_threshold`, which bounds the share of strangers let in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from speakerverify.errors import OperatingPointError
from speakerverify.scoring.calibration import Calibration
from speakerverify.scoring.similarity import ASNorm

#: Default false-accept operating point for open-set identification of uncalibrated models.
IDENTIFY_FAR = 0.01
#: Default bound on the share of strangers that open-set identification of a calibrated model
#: accepts as someone enrolled (see :meth:`Backend.identify_threshold`).
IDENTIFY_STRANGER_RATE = 0.01


@dataclass(frozen=True)
class Decision:
    """One trial's decision: ``score >= threshold``; ``llr`` and ``probability`` for calibrated models."""

    score: float
    same_speaker: bool
    threshold: float
    llr: float | None = None
    probability: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score, "same_speaker": self.same_speaker, "threshold": self.threshold}
        if self.llr is not None:
            out["llr"] = self.llr
            out["probability"] = self.probability
        return out


class Backend:
    """What a model directory's ``backend.json`` says about turning embeddings into decisions."""

    def __init__(self, config: dict | None, cohort: np.ndarray | None = None) -> None:
        self.config = config or {}
        cal = self.config.get("calibration")
        self.calibration = Calibration.from_dict(cal) if cal else None
        asn = self.config.get("asnorm")
        self.asnorm = ASNorm(cohort, asn.get("top_k", 100)) if asn and cohort is not None else None
        self.thresholds = self.config.get("thresholds", {})

    def _far_key(self, far: float) -> str | None:
        """The stored false-accept point equal to ``far`` (keys are strings such as "0.01"), if any."""
        points = self.thresholds.get("far", {})
        if not points:
            return None
        key = min(points, key=lambda k: abs(math.log(float(k)) - math.log(far)))
        return key if math.isclose(float(key), far, rel_tol=1e-6) else None

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
            if not 0 < far < 1:  # NaN too; _far_key's log() would fail with "math domain error"
                raise OperatingPointError(f"FAR must be a rate between 0 and 1 (e.g. 0.01), not {far:g}")
            points = self.thresholds.get("far", {})
            if not points:
                raise OperatingPointError("this model has no false-accept operating points; use the default threshold")
            key = self._far_key(far)
            if key is None:
                raise OperatingPointError(f"no operating point at FAR {far}; available: {', '.join(sorted(points))}")
            point = float(points[key])
        if self.thresholds.get("domain") != "llr":
            return np.full(n, point)
        if self.calibration is None:
            raise OperatingPointError("LLR operating points need a calibration in backend.json")
        return self.calibration.score_at(point, durations, n)

    def identify_threshold(self, gallery_size: int, far: float | None = None,
                           duration_s: float | None = None, stranger_rate: float | None = None) -> float:
        """The score the best of ``gallery_size`` enrolled speakers needs to be accepted.

        Open-set identification compares a stranger with every enrolled speaker, so a threshold
        fit for one 1:1 check lets strangers in N times as often. A calibrated model therefore
        accepts the best candidate when its LLR is at least ln(N / r), r the ``stranger_rate``
        (default ``IDENTIFY_STRANGER_RATE``, 1 %): for a different speaker a calibrated LLR exceeds
        t with probability at most e^-t (the likelihood ratio averages 1 over different-speaker
        trials; Markov's inequality), so a stranger passes any of N comparisons with probability
        at most N e^-t = r. It is also Bayes' rule with prior odds r : 1 that the speaker is
        enrolled; r = 1 is even odds (LLR >= ln N). Uncalibrated models use their ``IDENTIFY_FAR``
        operating point where they have one, else their EER threshold. ``far`` picks a fixed
        per-comparison operating point instead."""
        if far is not None and stranger_rate is not None:
            raise OperatingPointError("give a false-accept rate or a stranger rate, not both")
        if stranger_rate is not None and not 0 < stranger_rate <= 1:  # NaN too
            raise OperatingPointError(f"stranger rate must be above 0 and at most 1 (e.g. 0.01), not {stranger_rate:g}")
        if far is None and self.calibration is not None:
            rate = IDENTIFY_STRANGER_RATE if stranger_rate is None else stranger_rate
            return float(self.calibration.score_at(math.log(max(1, gallery_size) / rate), duration_s)[0])
        if stranger_rate is not None:
            raise OperatingPointError("a stranger rate needs a calibrated model; give a false-accept rate instead")
        if far is None and self._far_key(IDENTIFY_FAR) is not None:
            far = IDENTIFY_FAR
        return self.threshold(far, duration_s)

    def decide(self, score: float, far: float | None = None, duration_s: float | None = None,
               threshold: float | None = None) -> Decision:
        """The decision for one score; ``duration_s`` (the shorter recording's length) feeds a
        duration-aware calibration's llr and probability and LLR operating points. ``threshold``
        (a score) overrides the operating point."""
        thr = self.threshold(far, duration_s) if threshold is None else float(threshold)
        llr = probability = None
        if self.calibration is not None:
            llr = float(self.calibration.llr(score, duration_s))
            probability = float(self.calibration.probability(score, duration_s))
        return Decision(float(score), bool(score >= thr), thr, llr, probability)
