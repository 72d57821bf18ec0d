from __future__ import annotations

import numpy as np
import pytest

from speakerverify import metrics
from speakerverify.errors import OperatingPointError
from speakerverify.scoring import ASNorm, Backend, Calibration, cosine


def test_calibration_recovers_a_known_llr():
    # Gaussian target/non-target scores with equal variance: the true LLR is linear in the score,
    # llr(s) = (mu1 - mu0) / var * (s - (mu0 + mu1) / 2).
    rng = np.random.default_rng(0)
    mu0, mu1, sd, n = 0.1, 0.6, 0.15, 20000
    s = np.r_[rng.normal(mu1, sd, n), rng.normal(mu0, sd, 3 * n)]  # unbalanced on purpose
    y = np.r_[np.ones(n), np.zeros(3 * n)]
    cal = Calibration.fit(s, y)
    a_true = (mu1 - mu0) / sd**2
    b_true = -a_true * (mu0 + mu1) / 2
    assert cal.a == pytest.approx(a_true, rel=0.05)
    assert cal.b == pytest.approx(b_true, abs=0.2)
    assert cal.probability(np.array([(mu0 + mu1) / 2]))[0] == pytest.approx(0.5, abs=0.03)
    llr = cal.llr(s)
    assert metrics.cllr(llr, y) == pytest.approx(metrics.min_cllr(s, y), abs=0.02)


def test_duration_aware_calibration_recovers_llrs_that_depend_on_duration():
    # Short trials separate less: at 1 s the classes are 0.3 apart, at 4 s 0.6 apart (same spread).
    # Each duration's true LLR is linear in the score; the fit must recover both, and not
    # extrapolate beyond the durations it saw.
    rng = np.random.default_rng(1)
    sd, n = 0.15, 20000
    parts = {1.0: (0.15, 0.45), 4.0: (0.1, 0.7)}
    s, y, dur = [], [], []
    for seconds, (mu0, mu1) in parts.items():
        s += [rng.normal(mu1, sd, n), rng.normal(mu0, sd, n)]
        y += [np.ones(n), np.zeros(n)]
        dur += [np.full(2 * n, seconds)]
    s, y, dur = np.concatenate(s), np.concatenate(y), np.concatenate(dur)
    cal = Calibration.fit(s, y, dur)
    assert cal.q_range == (1.0, 4.0)
    probe = np.array([0.2, 0.4, 0.6])
    for seconds, (mu0, mu1) in parts.items():
        a_true = (mu1 - mu0) / sd**2
        true = a_true * (probe - (mu0 + mu1) / 2)
        np.testing.assert_allclose(cal.llr(probe, seconds), true, atol=0.25)
    np.testing.assert_allclose(cal.llr(probe, 0.2), cal.llr(probe, 1.0))  # clipped, not extrapolated
    np.testing.assert_allclose(cal.llr(probe), cal.llr(probe, 4.0))  # unknown duration: the longest
    plain = Calibration.fit(s, y)
    assert metrics.cllr(cal.llr(s, dur), y) < metrics.cllr(plain.llr(s), y) - 0.02
    again = Calibration.from_dict(cal.as_dict())
    np.testing.assert_allclose(again.llr(probe, 2.0), cal.llr(probe, 2.0))
    # One duration only: nothing to learn from it, a plain fit.
    assert Calibration.fit(s[:2 * n], y[:2 * n], dur[:2 * n]).q_range is None
    # Where the duration-aware fit would make a higher score mean less evidence at some length,
    # the plain fit is used instead (score thresholds must stay well defined).
    flipped = s.copy()
    flipped[dur == 1.0] = 0.6 - flipped[dur == 1.0]  # at 1 s targets now score lower
    fallback = Calibration.fit(flipped, y, dur)
    assert fallback.q_range is None and fallback.a > 0


def test_asnorm_matches_its_definition_on_a_known_cohort():
    # Cohort of unit vectors along the axes; enroll/test vectors chosen so the top-2 cohort
    # similarities are easy to read off by hand.
    cohort = np.eye(4)
    e = np.array([[3.0, 4.0, 0.0, 0.0]])  # cos to cohort: 0.6, 0.8, 0, 0 -> top-2 {0.8, 0.6}
    t = np.array([[0.0, 0.0, 1.0, 1.0]])  # cos: 0, 0, .707, .707 -> top-2 {.707, .707}
    raw = cosine(e, t)[0]
    assert raw == pytest.approx(0.0)
    me, se = 0.7, 0.1
    mt, st = np.sqrt(0.5), 1e-6  # zero spread is floored
    expected = 0.5 * ((raw - me) / se + (raw - mt) / st)
    got = ASNorm(cohort, top_k=2)(e, t)[0]
    assert got == pytest.approx(expected, rel=1e-3)
    assert ASNorm(cohort, top_k=2)(t, e)[0] == pytest.approx(got, rel=1e-6)  # symmetric
    assert ASNorm(cohort, top_k=10).top_k == 4  # capped at the cohort size


def test_asnorm_improves_eer_when_speakers_have_offsets():
    rng = np.random.default_rng(2)
    dim, n_spk = 64, 60
    centres = rng.normal(size=(n_spk, dim))
    bias = rng.normal(size=dim) * 3
    offsets = rng.uniform(0, 1.5, n_spk)  # speaker-dependent pull toward a shared direction
    def emb(i):
        return centres[i] + rng.normal(size=dim) * 1.2 + offsets[i] * bias
    cohort = np.stack([emb(i) for i in range(40)])
    ea, eb, labels = [], [], []
    for _ in range(1500):
        i, j = rng.integers(40, n_spk, 2)
        same = rng.random() < 0.5
        j = i if same else j
        if not same and i == j:
            continue
        ea.append(emb(i))
        eb.append(emb(j))
        labels.append(int(same))
    ea, eb, labels = np.stack(ea), np.stack(eb), np.array(labels)
    raw = cosine(ea, eb)
    normed = ASNorm(cohort, top_k=20)(ea, eb)
    assert metrics.eer(normed, labels)[0] < metrics.eer(raw, labels)[0]


def test_identify_rule_lets_in_at_most_the_stranger_rate():
    # Scores of a known model (Gaussian classes, equal spread, so the true LLR is linear), the
    # calibration fitted on them as fit_backend does. A stranger meets N enrolled speakers; the
    # best of its N different-speaker scores passes the open-set threshold at most a share r of the
    # time (the bound is loose: far fewer do), while even odds (r = 1) lets in many more.
    rng = np.random.default_rng(3)
    mu0, mu1, sd = 0.1, 0.6, 0.15
    s = np.r_[rng.normal(mu1, sd, 4000), rng.normal(mu0, sd, 4000)]
    cal = Calibration.fit(s, np.r_[np.ones(4000), np.zeros(4000)])
    backend = Backend({"calibration": cal.as_dict(), "thresholds": {"eer": 0.35}})
    strangers = rng.normal(mu0, sd, (20000, 24)).max(axis=1)
    accepted = {}
    for rate in (0.001, 0.01, 0.1, 1.0):
        threshold = backend.identify_threshold(24, stranger_rate=rate)
        assert cal.llr(np.array([threshold]))[0] == pytest.approx(np.log(24 / rate))
        accepted[rate] = float(np.mean(strangers >= threshold))
        assert accepted[rate] <= rate
    assert accepted[0.001] <= accepted[0.01] < accepted[0.1] < accepted[1.0]
    assert backend.identify_threshold(24) == backend.identify_threshold(24, stranger_rate=0.01)  # the default
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(OperatingPointError, match="stranger rate must be above 0 and at most 1"):
            backend.identify_threshold(24, stranger_rate=bad)
    with pytest.raises(OperatingPointError, match="not both"):
        backend.identify_threshold(24, far=0.01, stranger_rate=0.01)
    with pytest.raises(OperatingPointError, match="needs a calibrated model"):
        Backend({"thresholds": {"eer": 0.3}}).identify_threshold(24, stranger_rate=0.01)


def test_backend_decisions_and_operating_points():
    backend = Backend({"calibration": {"a": 10.0, "b": -5.0},
                       "thresholds": {"eer": 0.5, "far": {"0.01": 0.7}}})
    d = backend.decide(0.6).to_dict()
    assert d["same_speaker"] and d["threshold"] == 0.5
    assert d["llr"] == pytest.approx(1.0) and d["probability"] == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert not backend.decide(0.6, far=0.01).to_dict()["same_speaker"]
    with pytest.raises(OperatingPointError, match="no operating point"):  # also a ValueError, as before
        backend.decide(0.6, far=0.05).to_dict()
    assert "llr" not in Backend({"thresholds": {"eer": 0.3}}).decide(0.2).to_dict()
    aware = Backend({"calibration": {"a": 2.0, "b": -1.0, "c": 0.0, "d": 4.0, "duration_range_s": [1.0, 4.0]},
                     "thresholds": {"eer": 0.5}})
    short, long_ = aware.decide(0.6, duration_s=1.0).to_dict(), aware.decide(0.6, duration_s=4.0).to_dict()
    assert short["same_speaker"] == long_["same_speaker"]  # thresholds are on the score
    assert short["llr"] == pytest.approx(0.2) and long_["llr"] == pytest.approx(0.2 + 2.4 * np.log(4.0))
    # Operating points stored as LLRs: the score threshold follows the trial's length.
    by_llr = Backend({**aware.config, "thresholds": {"eer": 0.0, "far": {"0.01": 1.0}, "domain": "llr"}})
    assert by_llr.threshold(None, 1.0) == pytest.approx(0.5)  # llr 0 at 1 s: 2 s - 1 = 0
    np.testing.assert_allclose(by_llr.thresholds_for([1.0, 4.0, 9.0]),
                               [0.5, 1 / (2 + 4 * np.log(4.0)), 1 / (2 + 4 * np.log(4.0))])
    at_1s, at_4s = by_llr.threshold(0.01, 1.0), by_llr.threshold(0.01, 4.0)
    assert at_1s == pytest.approx(1.0) and at_4s == pytest.approx(2.0 / (2.0 + 4.0 * np.log(4.0)))
    assert by_llr.threshold(0.01) == pytest.approx(at_4s)  # unknown length: the longest
    np.testing.assert_allclose(by_llr.thresholds_for([4.0, 1.0], far=0.01), [at_4s, at_1s])
    for seconds, thr in ((1.0, at_1s), (4.0, at_4s)):
        assert by_llr.calibration.llr(thr, seconds) == pytest.approx(1.0)
        assert by_llr.decide(thr + 1e-6, 0.01, seconds).to_dict()["same_speaker"]
        assert not by_llr.decide(thr - 1e-6, 0.01, seconds).to_dict()["same_speaker"]
