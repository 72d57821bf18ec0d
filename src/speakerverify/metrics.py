"""Verification metrics: EER, minDCF, Cllr / min Cllr, ROC AUC, accuracy, and a DET plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError("scores and labels differ in length")
    if y.all() or not y.any():
        raise ValueError("need both target and non-target trials")
    return s, y


def error_rates(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold (accept when score >= threshold).

    Returns (p_miss, p_fa, thresholds) with one extra point beyond the highest score (reject all).
    """
    s, y = _as_arrays(scores, labels)
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    n_tar, n_non = y.sum(), (~y).sum()
    # Rejecting everything strictly below s[i]: misses = targets below, fas = non-targets at/above.
    tar_below = np.concatenate([[0], np.cumsum(y)])
    non_below = np.concatenate([[0], np.cumsum(~y)])
    # Only keep cut points between distinct scores.
    keep = np.concatenate([[True], s[1:] != s[:-1], [True]])
    p_miss = tar_below[keep] / n_tar
    p_fa = (n_non - non_below[keep]) / n_non
    thresholds = np.concatenate([s, [np.inf]])[keep]
    return p_miss, p_fa, thresholds


def eer(scores, labels) -> tuple[float, float]:
    """Equal error rate (fraction) and the threshold there (convex-hull / ROCCH interpolation)."""
    p_miss, p_fa, thr = error_rates(scores, labels)
    idx = np.nonzero(p_miss >= p_fa)[0][0]
    if idx == 0:
        return float(p_fa[0] if p_miss[0] == p_fa[0] else 0.0), float(thr[0])
    # Interpolate between point idx-1 (miss < fa) and idx (miss >= fa).
    m0, m1, f0, f1 = p_miss[idx - 1], p_miss[idx], p_fa[idx - 1], p_fa[idx]
    denom = (m1 - m0) - (f1 - f0)
    t = (f0 - m0) / denom if denom else 0.0
    rate = m0 + t * (m1 - m0)
    t_thr = thr[idx - 1] if not np.isfinite(thr[idx]) else thr[idx - 1] + t * (thr[idx] - thr[idx - 1])
    return float(rate), float(t_thr)


def min_dcf(scores, labels, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """Normalised minimum detection cost and its threshold."""
    p_miss, p_fa, thr = error_rates(scores, labels)
    dcf = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    default = min(c_miss * p_target, c_fa * (1 - p_target))
    i = int(np.argmin(dcf))
    return float(dcf[i] / default), float(thr[i])


def threshold_at_far(scores, labels, far: float) -> float:
    """Lowest threshold whose false-accept rate is at most ``far``."""
    _, p_fa, thr = error_rates(scores, labels)
    ok = np.nonzero(p_fa <= far)[0]
    return float(thr[ok[0]])


def accuracy(scores, labels, threshold) -> float:
    """Share of trials decided right at ``threshold`` (a number, or one per trial)."""
    s, y = _as_arrays(scores, labels)
    return float(np.mean((s >= threshold) == y))


def roc_auc(scores, labels) -> float:
    s, y = _as_arrays(scores, labels)
    return float(roc_auc_score(y, s))


def cllr(llrs, labels) -> float:
    """Log-likelihood-ratio cost (bits) of scores read as natural-log LLRs."""
    s, y = _as_arrays(llrs, labels)
    c_tar = np.mean(np.logaddexp(0, -s[y])) / np.log(2)
    c_non = np.mean(np.logaddexp(0, s[~y])) / np.log(2)
    return float(0.5 * (c_tar + c_non))


def min_cllr(scores, labels) -> float:
    """Cllr after the best monotonic calibration (PAV), i.e. the discrimination-only cost."""
    s, y = _as_arrays(scores, labels)
    posterior = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(s, y)
    eps = 1e-12
    prior_logodds = np.log(y.sum() / (~y).sum())
    llr = np.log(np.clip(posterior, eps, 1) / np.clip(1 - posterior, eps, 1)) - prior_logodds
    return cllr(np.clip(llr, -50, 50), y)


@dataclass
class Report:
    eer_percent: float
    eer_threshold: float
    min_dcf_p01: float
    min_dcf_p05: float
    roc_auc: float
    n_trials: int
    n_target: int

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def report(scores, labels) -> Report:
    s, y = _as_arrays(scores, labels)
    rate, thr = eer(s, y)
    return Report(eer_percent=100 * rate, eer_threshold=thr, min_dcf_p01=min_dcf(s, y, 0.01)[0],
                  min_dcf_p05=min_dcf(s, y, 0.05)[0], roc_auc=roc_auc(s, y), n_trials=int(len(s)),
                  n_target=int(y.sum()))


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], out: str | Path, title: str = "") -> Path:
    """Write a DET plot (normal-deviate axes) of ``{label: (scores, labels)}`` to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, (scores, labels) in curves.items():
        p_miss, p_fa, _ = error_rates(scores, labels)
        clip = lambda p: norm.ppf(np.clip(p, 5e-4, 1 - 5e-4))  # noqa: E731
        rate, _ = eer(scores, labels)
        ax.plot(clip(p_fa), clip(p_miss), label=f"{label} (EER {100 * rate:.2f}%)")
    ax.set_xticks(norm.ppf(ticks))
    ax.set_xticklabels([f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks))
    ax.set_yticklabels([f"{100 * t:g}" for t in ticks])
    lim = norm.ppf([5e-4, 0.5])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("false accept rate (%)")
    ax.set_ylabel("miss rate (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
