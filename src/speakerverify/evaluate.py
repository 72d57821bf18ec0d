"""Evaluation: embed files, score trial lists and the seed protocol's fixed pairs.

Two scorers, used by the CLI, the benchmark and claims scripts alike:

* trial lists (``label enroll test`` lines): :func:`score_trials` with a verifier, or
  :func:`score_trial_embeddings` from embeddings computed elsewhere (other processes, peers);
* the seed protocol (rows of a pickled clip array, fixed ``label i j`` pairs):
  :func:`score_seed_protocol`.

:func:`summarize` turns scores into the reported metrics at the model's own operating points.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from speakerverify import metrics
from speakerverify.audio import DEFAULT_MAX_AUDIO_S, SAMPLE_RATE, check_waveform
from speakerverify.data import Trial, from_seed_pickle, read_index_pairs, read_trials
from speakerverify.embedding.outputs import check_format, write_embeddings
from speakerverify.verifier import Verifier

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _progress(enabled: bool) -> Progress:
    return Progress(disable=not enabled, transient=True)


def iter_embeddings(verifier: Verifier, paths: Sequence[Path], second: bool = False
                    ) -> Iterator[tuple[np.ndarray, float]]:
    """Each path's embedding and duration (seconds), one file at a time, in order."""
    for p in paths:
        wave = verifier.load(p)
        yield verifier.embed_waves([wave], second=second)[0], len(wave) / SAMPLE_RATE


def embed_paths(verifier: Verifier, paths: Sequence[Path], progress: bool = False,
                second: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Embed each path once; returns (embeddings, durations in seconds)."""
    embs, durations = [], []
    with _progress(progress) as bar:
        task = bar.add_task("embedding", total=len(paths))
        for emb, seconds in iter_embeddings(verifier, paths, second):
            embs.append(emb)
            durations.append(seconds)
            bar.advance(task)
    return np.stack(embs), np.array(durations)


def embed_summary(verifier: Verifier, n_files: int, audio_s: float, wall_s: float) -> dict:
    """What ``embed --json`` reports: files, audio and compute seconds, real-time factor
    (compute / audio), files per second (of wall time, loading and decoding included), device."""
    compute = verifier.embedder.compute_s
    return {"n_files": n_files, "audio_s": round(audio_s, 3), "compute_s": round(compute, 4),
            "rtf": compute / audio_s if audio_s else None,
            "files_per_s": round(n_files / wall_s, 3) if wall_s > 0 else None,
            "load_s": round(verifier.load_s, 4), "model": verifier.model_name, "engine": verifier.engine,
            "device": str(verifier.device)}


def embed_files(files: Sequence[Path], out: Path, model: str | None = None, engine: str = "torch",
                progress: bool = False, max_audio_s: float = DEFAULT_MAX_AUDIO_S, device: str = "cpu",
                fmt: str = "npz", threads: int | None = None) -> dict:
    """Embed ``files`` into one file ``out`` (``fmt``: npz or kaldi, keys = the paths as given)."""
    check_format(fmt)
    verifier = Verifier(model, engine=engine, threads=threads, max_audio_s=max_audio_s, device=device)
    t0 = time.perf_counter()
    embs, durations = embed_paths(verifier, files, progress)
    written = write_embeddings(out, fmt, [str(f) for f in files], embs, verifier.model_ident)
    summary = embed_summary(verifier, len(files), float(durations.sum()), time.perf_counter() - t0)
    return {**summary, "dim": int(embs.shape[1]), "out": str(written[0]), "written": [str(p) for p in written]}


def trial_files(trials: Sequence[Trial]) -> list[str]:
    """Every file a trial list names, once, sorted."""
    return sorted({t.enroll for t in trials} | {t.test for t in trials})


def score_trial_embeddings(trials: Sequence[Trial], emb: Mapping[str, np.ndarray], score: ScoreFn,
                           emb2: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of ``trials`` from embeddings by file (``emb2``: a two-branch model's test
    side); ``score`` scores row-aligned embedding pairs."""
    emb2 = emb if emb2 is None else emb2
    ea = np.stack([emb[t.enroll] for t in trials])
    eb = np.stack([emb2[t.test] for t in trials])
    return np.asarray(score(ea, eb)), np.array([t.label for t in trials])


def trial_durations(trials: Sequence[Trial], seconds: Mapping[str, float]) -> np.ndarray:
    """The shorter side of each trial, in seconds (what a duration-aware calibration reads)."""
    return np.array([min(seconds[t.enroll], seconds[t.test]) for t in trials])


def score_trials(verifier: Verifier, trials_path: Path, root: Path, progress: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, labels and durations (the shorter side of each trial, seconds) of a trial list."""
    trials = read_trials(trials_path)
    files = trial_files(trials)
    paths = [root / f for f in files]
    emb, dur = embed_paths(verifier, paths, progress)
    # A two-branch (non-shared) model embeds the test side with its second branch.
    emb2 = embed_paths(verifier, paths, progress, second=True)[0] if verifier.bundle.two_branch else emb
    scores, labels = score_trial_embeddings(trials, dict(zip(files, emb, strict=True)), verifier.score_embeddings,
                                            dict(zip(files, emb2, strict=True)))
    return scores, labels, trial_durations(trials, dict(zip(files, dur, strict=True)))


@dataclass
class SeedScores:
    """The seed protocol scored: per pair ``scores``, ``labels``, ``durations`` (shorter side, s);
    ``embeddings``: every clip's (first-branch) embedding, row by row."""

    scores: np.ndarray
    labels: np.ndarray
    durations: np.ndarray
    embeddings: np.ndarray


def score_seed_protocol(verifier: Verifier, pkl: Path, pairs_path: Path, batch_size: int = 32) -> SeedScores:
    """Embed every row of the pickled clip array (branch 1 for i, branch 2 for j in two-branch
    models) and score the fixed ``label i j`` pairs. Every row is scored as given, as the notebook
    did: ``tes.pkl`` has one near-silent clip, which user input validation would refuse."""
    clips = [verifier.speech(check_waveform(u.wave, u.key, verifier.bundle.min_duration_s, reject_silence=False),
                             u.key, strict=False) for u in from_seed_pickle(pkl)]
    pairs = np.array(read_index_pairs(pairs_path)).reshape(-1, 3)
    first = verifier.embed_waves(clips, batch_size=batch_size)
    second = verifier.embed_waves(clips, second=True, batch_size=batch_size) if verifier.bundle.two_branch else first
    scores = np.asarray(verifier.score_embeddings(first[pairs[:, 1]], second[pairs[:, 2]]), dtype=np.float64)
    seconds = np.array([len(c) / SAMPLE_RATE for c in clips])
    durations = np.minimum(seconds[pairs[:, 1]], seconds[pairs[:, 2]])
    return SeedScores(scores, pairs[:, 0], durations, first)


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


def evaluate_trials(trials: Path, root: Path, model: str | None = None, engine: str = "torch",
                    det: Path | None = None, scores_out: Path | None = None, progress: bool = False,
                    verifier: Verifier | None = None, device: str = "cpu") -> dict:
    verifier = verifier or Verifier(model, engine=engine, device=device)
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
    seed = score_seed_protocol(verifier, pkl, pairs_path)
    result = summarize(verifier, seed.scores, seed.labels, seed.durations)
    result["pair_accuracy"] = result.pop("accuracy_at_threshold")
    half = verifier.backend.thresholds.get("sigmoid_half")
    if half is not None:
        result["pair_accuracy_at_0_5"] = round(metrics.accuracy(seed.scores, seed.labels, float(half)), 4)
    result["n_pairs"] = result["n_trials"]
    return result
