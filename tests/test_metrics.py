from __future__ import annotations

import numpy as np
import pytest

from speakerverify import metrics


def test_eer_of_known_score_set():
    # Targets 0.4..0.9, non-targets 0.1..0.6: one target (0.4) below the cut, one non-target (0.6) above.
    tar = [0.4, 0.5, 0.7, 0.8, 0.9]
    non = [0.1, 0.2, 0.3, 0.45, 0.6]
    scores = np.array(tar + non)
    labels = np.array([1] * 5 + [0] * 5)
    rate, thr = metrics.eer(scores, labels)
    assert rate == pytest.approx(0.2)
    assert 0.4 <= thr <= 0.6
    assert metrics.accuracy(scores, labels, 0.5) == pytest.approx(0.8)


def test_perfect_and_inverted_separation():
    labels = np.array([1, 1, 0, 0])
    assert metrics.eer([0.9, 0.8, 0.1, 0.2], labels)[0] == 0.0
    assert metrics.eer([0.1, 0.2, 0.9, 0.8], labels)[0] == 1.0
    assert metrics.roc_auc([0.9, 0.8, 0.1, 0.2], labels) == 1.0


def test_min_dcf_and_far_threshold():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(2, 1, 2000), rng.normal(0, 1, 2000)]
    labels = np.r_[np.ones(2000), np.zeros(2000)]
    d01, _ = metrics.min_dcf(scores, labels, 0.01)
    d05, _ = metrics.min_dcf(scores, labels, 0.05)
    assert 0 < d05 < d01 <= 1.0
    thr = metrics.threshold_at_far(scores, labels, 0.01)
    assert np.mean(scores[labels == 0] >= thr) <= 0.01
    # Gaussian EER for d' = 2 is Phi(-1) = 15.9 %.
    assert metrics.eer(scores, labels)[0] == pytest.approx(0.159, abs=0.015)


def test_cllr_of_calibrated_and_useless_scores():
    rng = np.random.default_rng(1)
    n = 5000
    # Well-calibrated Gaussian LLRs: mean +/- mu, variance 2 mu.
    mu = 2.0
    llr = np.r_[rng.normal(mu, np.sqrt(2 * mu), n), rng.normal(-mu, np.sqrt(2 * mu), n)]
    labels = np.r_[np.ones(n), np.zeros(n)]
    c = metrics.cllr(llr, labels)
    assert c < 1.0
    assert metrics.min_cllr(llr, labels) <= c + 1e-6
    assert c == pytest.approx(metrics.min_cllr(llr, labels), abs=0.03)
    assert metrics.cllr(np.zeros(2 * n), labels) == pytest.approx(1.0)
    assert metrics.cllr(3 * llr, labels) > c + 0.1  # over-confident scores cost more


def test_det_plot(tmp_path):
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(1, 1, 300), rng.normal(0, 1, 300)]
    labels = np.r_[np.ones(300), np.zeros(300)]
    out = metrics.plot_det({"model": (scores, labels)}, tmp_path / "det.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
