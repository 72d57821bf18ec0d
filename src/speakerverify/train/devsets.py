"""Dev conditions for fitting a back end outside a training run (``scripts/make_ensemble.py``,
``scripts/check_default_backend.py``): :func:`refit_backend`.

A dev trial list gives two conditions, as the embedding task's export uses them: its recordings
as they are (``waves``) and seeded short telephone-band crops of them (``short``); the AS-norm
cohort is one mean embedding per training speaker (first 4 s of each unperturbed clip). Each
condition carries per-trial durations (the shorter side) and embeddings, ready for
:func:`speakerverify.scoring.fit.fit_backend`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from speakerverify.data import Utterance, from_manifest, read_trials
from speakerverify.errors import RecipeError
from speakerverify.evaluate import trial_files
from speakerverify.scoring import cosine, l2_normalize
from speakerverify.scoring.fit import DevCondition, FittedBackend, fit_backend
from speakerverify.train.augment import telephone

if TYPE_CHECKING:
    from speakerverify.verifier import Verifier

#: ``embed(waves) -> (N, D)`` embeddings of 16 kHz waveforms.
Embed = Callable[[Sequence[np.ndarray]], np.ndarray]
SR = 16000
COHORT_CLIP_S = 4.0


@dataclass
class DevList:
    """A dev trial list's recordings (each read once) and its trials as index pairs."""

    waves: list[np.ndarray]
    ia: np.ndarray
    ib: np.ndarray
    labels: np.ndarray

    @classmethod
    def read(cls, trials_path: Path, root: Path) -> DevList:
        trials = read_trials(trials_path)
        files = trial_files(trials)
        idx = {f: i for i, f in enumerate(files)}
        waves = [sf.read(root / f, dtype="float32")[0] for f in files]
        return cls(waves, np.array([idx[t.enroll] for t in trials]), np.array([idx[t.test] for t in trials]),
                   np.array([t.label for t in trials]))

    def condition(self, name: str, waves: Sequence[np.ndarray], embed: Embed) -> DevCondition:
        emb = embed(waves)
        seconds = np.array([len(w) / SR for w in waves])
        ea, eb = emb[self.ia], emb[self.ib]
        return DevCondition(name, cosine(ea, eb), self.labels, np.minimum(seconds[self.ia], seconds[self.ib]), ea, eb)

    def conditions(self, embed: Embed, short_s: float = 1.0) -> list[DevCondition]:
        """``waves`` (as recorded) and ``short`` (telephone-band crops of ``short_s`` seconds)."""
        return [self.condition("waves", self.waves, embed),
                self.condition("short", short_telephone_crops(self.waves, short_s), embed)]


def short_telephone_crops(waves: Sequence[np.ndarray], seconds: float, seed: int = 12345) -> list[np.ndarray]:
    """A seeded ``seconds``-long crop of each wave, through the telephone channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = []
    for w in waves:
        start = int(rng.integers(0, max(1, len(w) - n)))
        out.append(telephone(w[start:start + n], rng))
    return out


def speaker_cohort(utts: Sequence[Utterance], embed: Embed) -> np.ndarray:
    """One normalised mean embedding per speaker of ``utts`` (their first 4 s), in first-seen order."""
    by_spk: dict[str, list[np.ndarray]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(sf.read(u.path, dtype="float32")[0][:int(SR * COHORT_CLIP_S)])
    return np.stack([l2_normalize(embed(waves).mean(0)) for waves in by_spk.values()])


def refit_backend(verifier: Verifier, recipe: dict) -> tuple[FittedBackend, np.ndarray]:
    """The back end of ``verifier``'s model fitted afresh as the embedding task's export fits it,
    from the recipe's dev list and training manifest (``data``) and ``export`` settings; also the
    AS-norm cohort it was fitted with."""
    data, exp = recipe["data"], recipe.get("export") or {}
    if data.get("dev") is not None or data.get("manifests") is not None or exp.get("cohort_files"):
        raise RecipeError("refitting outside training supports recipes with one dev list (data.dev_trials) and one "
                          "training manifest (data.manifest); data.dev, data.manifests and export.cohort_files "
                          "are fitted by the embedding task's export only")

    def embed(waves: Sequence[np.ndarray]) -> np.ndarray:
        return verifier.embed_waves(list(waves))

    dev = DevList.read(_path(data["dev_trials"]), _path(data["dev_root"]))
    conditions = dev.conditions(embed, float(exp.get("short_dev_s", 1.0)))
    cohort = speaker_cohort(from_manifest(_path(data["manifest"]), splits=["train"]), embed)
    fitted = fit_backend(conditions, cohort, asnorm=bool(exp.get("asnorm", True)), top_k=int(exp.get("top_k", 50)),
                         far=exp.get("far", [0.01, 0.001]),
                         fitted_on=str(data["dev_trials"]) + " (clean + short telephone-band crops)")
    return fitted, cohort


def _path(p: str) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(p)))
