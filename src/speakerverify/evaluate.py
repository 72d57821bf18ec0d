"""Evaluation: embed files, score trial lists and the seed protocol's fixed pairs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.progress import Progress

from speakerverify import metrics
from speakerverify.audio import SAMPLE_RATE, check_waveform
from speakerverify.data import from_seed_pickle, read_index_pairs, read_trials
from speakerverify.verifier import Verifier


def _progress(enabled: bool) -> Progress:
    return Progress(disable=not enabled, transient=True)


def embed_paths(verifier: Verifier, paths: Sequence[Path], progress: bool = False,
                second: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Embed each path once; returns (embeddings, durations in seconds)."""
    embs, durations = [], []
    with _progress(progress) as bar:
        task = bar.add_task("embedding", total=len(paths))
        for p in paths:
            wave = verifier.load(p)
            durations.append(len(wave) / SAMPLE_RATE)
            embs.append(verifier.embed_waves([wave], second=second)[0])
            bar.advance(task)
    return np.stack(embs), np.array(durations)


def embed_files(files: Sequence[Path], out: Path, model: str | None = None, backend: str = "torch",
                progress: bool = False) -> dict:
    verifier = Verifier(model, backend=backend)
    embs, durations = embed_paths(verifier, files, progress)
    audio_s = float(durations.sum())
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, embeddings=embs, files=np.array([str(f) for f in files]), model=verifier.model_ident)
    compute = verifier.embedder.compute_s
    return {"n_files": len(files), "dim": int(embs.shape[1]), "audio_s": round(audio_s, 3),
            "compute_s": round(compute, 4), "rtf": compute / audio_s if audio_s else None,
            "load_s": round(verifier.load_s, 4), "model": verifier.model_name, "backend": backend,
            "out": str(out)}


def score_trials(verifier: Verifier, trials_path: Path, root: Path, progress: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, labels and durations (the shorter side of each trial, seconds) of a trial list."""
    trials = read_trials(trials_path)
    files = sorted({t.enroll for t in trials} | {t.test for t in trials})
    idx = {f: i for i, f in enumerate(files)}
    paths = [root / f for f in files]
    emb, dur = embed_paths(verifier, paths, progress)
    # A two-branch (non-shared) model embeds the test side with its second branch.
    emb2 = embed_paths(verifier, paths, progress, second=True)[0] if verifier.bundle.two_branch else emb
    ea = emb[[idx[t.enroll] for t in trials]]
    eb = emb2[[idx[t.test] for t in trials]]
    scores = verifier.score_embeddings(ea, eb)
    labels = np.array([t.label for t in trials])
    durations = np.minimum(dur[[idx[t.enroll] for t in trials]], dur[[idx[t.test] for t in trials]])
    return scores, labels, durations


def summarize(verifier: Verifier, scores: np.ndarray, labels: np.ndarray,
              durations: np.ndarray | None = None) -> dict:
    rep = metrics.report(scores, labels).as_dict()
    backend = verifier.backend
    thr = backend.thresholds_for(durations)
    result = {**rep, "accuracy_at_threshold": round(metrics.accuracy(scores, labels, thr), 4),
              "min_cllr": round(metrics.min_cllr(scores, labels), 4)}
    if backend.thresholds.get("domain") == "llr":  # the threshold is an LLR; each trial's score one follows
        result["threshold_llr"] = float(backend.thresholds["eer"])
    else:
        result["threshold"] = float(thr[0])
    cal = backend.calibration
    if cal is not None:
        result["cllr"] = round(metrics.cllr(cal.llr(scores, durations), labels), 4)
    result["model"] = verifier.model_name
    return result


def evaluate_trials(trials: Path, root: Path, model: str | None = None, backend: str = "torch",
                    det: Path | None = None, scores_out: Path | None = None, progress: bool = False,
                    verifier: Verifier | None = None) -> dict:
    verifier = verifier or Verifier(model, backend=backend)
    t0 = time.perf_counter()
    scores, labels, durations = score_trials(verifier, trials, root, progress)
    result = summarize(verifier, scores, labels, durations)
    result["trials"] = str(trials)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    if det is not None:
        metrics.plot_det({verifier.model_name: (scores, labels)}, det, title=Path(trials).stem)
        result["det"] = str(det)
    if scores_out is not None:
        np.savetxt(scores_out, np.c_[labels, scores], fmt=["%d", "%.6f"])
    return result


def evaluate_seed_pairs(pkl: Path, pairs_path: Path, model: str | None = None,
                        verifier: Verifier | None = None) -> dict:
    """The seed protocol: rows of a pickled clip array, fixed ``label i j`` pairs."""
    verifier = verifier or Verifier(model)
    # Every row is scored as given, as the notebook did (tes.pkl has one near-silent clip).
    clips = [check_waveform(u.wave, u.key, verifier.bundle.min_duration_s, reject_silence=False)
             for u in from_seed_pickle(pkl)]
    pairs = read_index_pairs(pairs_path)
    labels = np.array([p[0] for p in pairs])
    first = verifier.embed_waves(clips, batch_size=32)
    second = verifier.embed_waves(clips, second=True, batch_size=32) if verifier.bundle.two_branch else first
    scores = verifier.score_embeddings(first[[p[1] for p in pairs]], second[[p[2] for p in pairs]])
    durations = np.array([len(c) / SAMPLE_RATE for c in clips])
    durations = np.minimum(durations[[p[1] for p in pairs]], durations[[p[2] for p in pairs]])
    result = summarize(verifier, scores, labels, durations)
    result["pair_accuracy"] = result.pop("accuracy_at_threshold")
    half = verifier.backend.thresholds.get("sigmoid_half")
    if half is not None:
        result["pair_accuracy_at_0_5"] = round(metrics.accuracy(scores, labels, float(half)), 4)
    result["n_pairs"] = result["n_trials"]
    return result
