"""Fit a back end (``backend.json``) on development trials: the one place it is done.

Training export (both tasks), ensembles (``scripts/make_ensemble.py``), imported models
(``speakerverify import-model --dev-trials``) and the scripts call :func:`fit_backend`. Its input
is any number of dev *conditions* (a trial list as it is, its short crops, another corpus' dev
list...), each with raw scores, labels, the trials' durations and, for AS-norm, the per-trial
embeddings; the conditions are pooled, so one set of operating points serves them all:

1. AS-norm (when a cohort is given and ``asnorm``): kept only if it lowers the pooled EER. One
   threshold serves every condition in use, and AS-norm can help each condition alone while
   pulling their score ranges apart (short clips' narrow cohort statistics inflate their scores).
2. Calibration (``calibrate``): logistic, duration-aware when the trials span several durations
   (:class:`~speakerverify.scoring.calibration.Calibration`).
3. Operating points: the equal-error point and one per false-accept rate in ``far``, on the
   duration-aware LLR where there is one (``"domain": "llr"``: the score threshold then follows
   the trial's length, and each condition sits near its own equal-error point), else on the score.
   ``eer_rule="gaussian"`` sets the equal-error point of Gaussians fitted to the two classes'
   scores instead, which stays defined when the dev scores separate perfectly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from speakerverify import metrics
from speakerverify.errors import DataError
from speakerverify.scoring.calibration import Calibration
from speakerverify.scoring.similarity import ASNorm


@dataclass
class DevCondition:
    """One dev condition: ``scores`` (raw: cosine or the model's own), ``labels`` (1 = same
    speaker), ``durations`` (per trial, the shorter side in seconds; None when unknown) and, for
    AS-norm, the per-trial ``enroll`` and ``test`` embeddings (N, D)."""

    name: str
    scores: np.ndarray
    labels: np.ndarray
    durations: np.ndarray | None = None
    enroll: np.ndarray | None = None
    test: np.ndarray | None = None


class FittedBackend(NamedTuple):
    """``backend``: the ``backend.json`` content; ``keep_cohort``: write ``cohort.npy`` (AS-norm kept)."""

    backend: dict[str, Any]
    keep_cohort: bool


def gaussian_eer_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold where Gaussians fitted to target and non-target scores miss and false-accept
    equally often: (mu_t sd_n + mu_n sd_t) / (sd_t + sd_n)."""
    tar, non = scores[labels == 1], scores[labels == 0]
    if len(tar) < 2 or len(non) < 2:
        raise DataError("the threshold trial list needs at least 2 target and 2 non-target trials")
    mt, st, mn, sn = tar.mean(), tar.std(ddof=1), non.mean(), non.std(ddof=1)
    return float((mt * sn + mn * st) / (st + sn))


def fit_backend(conditions: Sequence[DevCondition], cohort: np.ndarray | None = None, *, asnorm: bool = True,
                top_k: int = 50, far: Sequence[float] = (0.01, 0.001), calibrate: bool = True,
                eer_rule: str = "rocch", fitted_on: str | None = None,
                score: str | None = "cosine") -> FittedBackend:
    """The back end fitted on ``conditions`` pooled (see the module docstring).

    ``cohort``: AS-norm cohort embeddings (needs every condition's ``enroll``/``test``); ``top_k``
    its size per side (given a cohort, the file records each condition's EER with and without
    AS-norm, ``dev_eer_percent``, even when ``asnorm`` is off); ``far``: false-accept rates to
    store operating points for; ``fitted_on``: a note of the dev data used; ``score``: the
    similarity named in the file (None: omitted, for models that score pairs themselves). Returns
    the ``backend.json`` dict and whether the cohort is kept."""
    if not conditions:
        raise DataError("fit_backend needs at least one dev condition")
    if eer_rule not in ("rocch", "gaussian"):
        raise ValueError(f"eer_rule must be rocch or gaussian, not {eer_rule!r}")
    asn = ASNorm(cohort, top_k) if asnorm and cohort is not None else None
    normed, eers = [], {}
    for c in conditions:
        s = asn(c.enroll, c.test, c.scores) if asn else c.scores
        normed.append(s)
        eers[c.name] = (100 * metrics.eer(c.scores, c.labels)[0], 100 * metrics.eer(s, c.labels)[0])
    labels = np.concatenate([c.labels for c in conditions])
    raw = np.concatenate([c.scores for c in conditions])
    scores = np.concatenate(normed)
    eers["pooled"] = (100 * metrics.eer(raw, labels)[0], 100 * metrics.eer(scores, labels)[0])
    if asn and eers["pooled"][1] >= eers["pooled"][0]:
        asn, scores = None, raw  # AS-norm did not help on dev: keep the raw score
    known = all(c.durations is not None for c in conditions)
    durations = np.concatenate([c.durations for c in conditions]) if known else None
    backend: dict[str, Any] = {}
    if score is not None:
        backend["score"] = score
    points_on = scores
    cal = None
    if calibrate:
        cal = Calibration.fit(scores, labels, durations)
        backend["calibration"] = cal.as_dict()
        if cal.q_range is not None:
            points_on = cal.llr(scores, durations)
    eer_point = gaussian_eer_threshold(points_on, labels) if eer_rule == "gaussian" else metrics.eer(points_on,
                                                                                                      labels)[1]
    thresholds: dict[str, Any] = {"eer": eer_point}
    if far:
        thresholds["far"] = {str(f): metrics.threshold_at_far(points_on, labels, float(f)) for f in far}
    if cal is not None and cal.q_range is not None:
        thresholds["domain"] = "llr"
    backend["thresholds"] = thresholds
    if fitted_on is not None:
        backend["fitted_on"] = fitted_on
    if cohort is not None:  # the record of the AS-norm decision: EER % per condition, raw and normalised
        backend["dev_eer_percent"] = {k: {"raw": round(v[0], 3), "asnorm": round(v[1], 3)} for k, v in eers.items()}
    if asn is not None:
        backend["asnorm"] = {"top_k": int(top_k)}
    return FittedBackend(backend, asn is not None)
