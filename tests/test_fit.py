"""scoring.fit.fit_backend: the one back-end fit, on fixed dev scores.

``data/fit_backend_expected.json`` is what training's export wrote (the fitting code of
``EmbeddingTask.export`` before it called fit_backend, run on the synthetic conditions below);
fit_backend must reproduce it byte for byte. ``scripts/check_default_backend.py`` does the same
for the shipped default model from real speech.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from speakerverify.errors import DataError
from speakerverify.scoring import Backend, cosine
from speakerverify.scoring.fit import DevCondition, fit_backend, gaussian_eer_threshold

EXPECTED = Path(__file__).parent / "data" / "fit_backend_expected.json"


def synthetic() -> tuple[np.ndarray, list[DevCondition]]:
    """Speakers with offsets along a shared direction (AS-norm helps); a clean condition of 2-4 s
    trials and a noisier one of 1-s trials."""
    rng = np.random.default_rng(8)
    dim, n_spk = 16, 40
    centres = rng.normal(size=(n_spk, dim))
    bias = rng.normal(size=dim) * 2
    offsets = rng.uniform(0, 1.5, n_spk)

    def emb(i: int, noise: float) -> np.ndarray:
        return centres[i] + rng.normal(size=dim) * noise + offsets[i] * bias

    cohort = np.stack([emb(i, 1.0) for i in range(20)])
    conditions = []
    for name, noise, dur in (("waves", 1.0, (2.0, 4.0)), ("short", 2.0, (1.0, 1.0))):
        ea, eb, y = [], [], []
        for k in range(300):
            i = int(rng.integers(20, n_spk))
            same = k % 2 == 0
            j = i if same else int((i - 20 + rng.integers(1, 20)) % 20 + 20)
            ea.append(emb(i, noise))
            eb.append(emb(j, noise))
            y.append(int(same))
        enroll, test, labels = np.stack(ea), np.stack(eb), np.array(y)
        durations = rng.uniform(*dur, 300) if dur[0] != dur[1] else np.full(300, dur[0])
        conditions.append(DevCondition(name, cosine(enroll, test), labels, durations, enroll, test))
    return cohort, conditions


def test_fit_backend_reproduces_the_training_export_byte_for_byte() -> None:
    cohort, conditions = synthetic()
    fitted = fit_backend(conditions, cohort, top_k=10, far=[0.01, 0.1], fitted_on="synthetic (clean + short)")
    assert fitted.keep_cohort
    assert json.dumps(fitted.backend, indent=2) == EXPECTED.read_text()
    backend, keep = fitted  # unpacks as (backend.json dict, keep the cohort)
    assert keep and backend["thresholds"]["domain"] == "llr" and backend["asnorm"] == {"top_k": 10}


def test_fit_backend_takes_any_number_of_conditions_and_drops_asnorm_that_does_not_help() -> None:
    cohort, conditions = synthetic()
    extra = DevCondition("third", conditions[0].scores[:100], conditions[0].labels[:100],
                         conditions[0].durations[:100], conditions[0].enroll[:100], conditions[0].test[:100])
    fitted = fit_backend([*conditions, extra], cohort, top_k=10)
    assert set(fitted.backend["dev_eer_percent"]) == {"waves", "short", "third", "pooled"}
    # Raw scores that already separate the classes: AS-norm cannot lower the EER, so it is not kept.
    perfect = [DevCondition(c.name, c.labels + 0.01 * c.scores, c.labels, c.durations, c.enroll, c.test)
               for c in conditions]
    dropped = fit_backend(perfect, cohort, top_k=10)
    pooled = dropped.backend["dev_eer_percent"]["pooled"]
    assert not dropped.keep_cohort and "asnorm" not in dropped.backend and pooled["asnorm"] >= pooled["raw"]
    off = fit_backend(conditions, cohort, asnorm=False)
    assert not off.keep_cohort and "asnorm" not in off.backend
    assert all(v["raw"] == v["asnorm"] for v in off.backend["dev_eer_percent"].values())
    # The fitted file is what Backend reads: its points decide the dev trials as fitted.
    b = Backend(fitted.backend)
    thr = b.thresholds_for(np.concatenate([c.durations for c in conditions]))
    assert thr.shape == (600,) and np.all(np.isfinite(thr))


def test_fit_backend_without_calibration_or_durations() -> None:
    _, conditions = synthetic()
    plain = [DevCondition(c.name, c.scores, c.labels) for c in conditions]
    fitted = fit_backend(plain)
    assert "domain" not in fitted.backend["thresholds"] and "c" not in fitted.backend["calibration"]
    scores_only = fit_backend(plain[:1], calibrate=False, far=(), score=None)
    assert set(scores_only.backend) == {"thresholds"}
    assert set(scores_only.backend["thresholds"]) == {"eer"}
    gauss = fit_backend(plain[:1], calibrate=False, far=(), eer_rule="gaussian")
    assert gauss.backend["thresholds"]["eer"] == gaussian_eer_threshold(plain[0].scores, plain[0].labels)
    with pytest.raises(DataError):
        fit_backend([])
    with pytest.raises(DataError, match="at least 2 target"):
        gaussian_eer_threshold(np.array([0.1, 0.9, 0.2]), np.array([1, 0, 0]))


def test_gaussian_threshold_sits_between_the_classes() -> None:
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0.7, 0.05, 200), rng.normal(0.1, 0.1, 200)]
    labels = np.r_[np.ones(200), np.zeros(200)]
    thr = gaussian_eer_threshold(scores, labels)
    assert 0.45 < thr < 0.6  # closer to the narrower target distribution
