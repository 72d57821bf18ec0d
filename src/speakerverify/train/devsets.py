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
from dataclasses import dataclass, field, replace
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
from speakerverify.train.recipe import check_keys

if TYPE_CHECKING:
    from speakerverify.verifier import Verifier

#: ``embed(waves) -> (N, D)`` embeddings of 16 kHz waveforms.
Embed = Callable[[Sequence[np.ndarray]], np.ndarray]
SR = 16000
COHORT_CLIP_S = 4.0


@dataclass
class DevList:
    """A dev trial list's recordings (each read once; ``files``: their paths relative to the data
    root) and its trials as index pairs."""

    waves: list[np.ndarray]
    ia: np.ndarray
    ib: np.ndarray
    labels: np.ndarray
    files: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, trials_path: Path, root: Path) -> DevList:
        trials = read_trials(trials_path)
        files = trial_files(trials)
        idx = {f: i for i, f in enumerate(files)}
        waves = [sf.read(root / f, dtype="float32")[0] for f in files]
        return cls(waves, np.array([idx[t.enroll] for t in trials]), np.array([idx[t.test] for t in trials]),
                   np.array([t.label for t in trials]), list(files))

    def condition(self, name: str, waves: Sequence[np.ndarray], embed: Embed) -> DevCondition:
        emb = embed(waves)
        seconds = np.array([len(w) / SR for w in waves])
        ea, eb = emb[self.ia], emb[self.ib]
        return DevCondition(name, cosine(ea, eb), self.labels, np.minimum(seconds[self.ia], seconds[self.ib]), ea, eb)

    def conditions(self, embed: Embed, short_s: float = 1.0) -> list[DevCondition]:
        """``waves`` (as recorded) and ``short`` (telephone-band crops of ``short_s`` seconds)."""
        return [self.condition("waves", self.waves, embed),
                self.condition("short", short_crops(self.waves, short_s), embed)]


def manifest_specs(data: dict) -> list[dict]:
    """``data.manifests`` (several corpora) or the single legacy ``data.manifest``, as
    ``{path, weight, name}`` dicts. ``weight`` scales the chance that a batch draws each of the
    corpus' files (1.0: every training file equally likely); ``name`` prefixes the corpus'
    speaker ids so that two corpora's speaker "12" stay two speakers."""
    items = data.get("manifests")
    if items is None:
        return [{"path": data["manifest"], "weight": 1.0, "name": ""}] if data.get("manifest") else []
    if not isinstance(items, list) or not items:
        raise RecipeError("recipe: data.manifests must be a non-empty list of manifest paths or {path, weight, name}")
    specs = []
    for item in items:
        spec = {"path": item} if isinstance(item, str) else dict(item)
        if not isinstance(spec, dict) or "path" not in spec:
            raise RecipeError(f"recipe: data.manifests entry {item!r} has no path")
        check_keys(spec, "data.manifests[]", {"path", "weight", "name"})
        weight = float(spec.get("weight", 1.0))
        if weight <= 0:
            raise RecipeError(f"recipe: data.manifests weight for {spec['path']} must be positive")
        specs.append({"path": spec["path"], "weight": weight, "name": str(spec.get("name") or
                                                                           _path(spec["path"]).parent.name)})
    return specs



def dev_specs(data: dict, export: dict | None = None) -> tuple[list[dict], bool]:
    """``data.dev``: dev lists, each ``{trials, root, short_s}`` (``short_s``: also score
    ``short_s``-second telephone-band crops of its recordings), or the legacy single
    ``dev_trials``/``dev_root`` with ``export.short_dev_s``. Second value: legacy."""
    items = data.get("dev")
    if items is None:
        short_s = float((export or {}).get("short_dev_s", 1.0))
        legacy = {"trials": data["dev_trials"], "root": data["dev_root"], "short_s": short_s}
        return [legacy], True
    if not isinstance(items, list) or not items:
        raise RecipeError("recipe: data.dev must be a non-empty list of {trials, root, short_s}")
    specs = []
    for item in items:
        if not isinstance(item, dict) or "trials" not in item:
            raise RecipeError(f"recipe: data.dev entry {item!r} needs trials")
        check_keys(item, "data.dev[]", {"trials", "root", "short_s"})
        if "test" in _path(item["trials"]).name:
            raise RecipeError(f"recipe: {item['trials']} looks like a test list; dev lists only")
        specs.append({"trials": item["trials"], "root": item.get("root", "../shared/data"),
                      "short_s": item.get("short_s")})
    return specs, False


def fitted_on(specs: list[dict]) -> str:
    """backend.json's note of the dev conditions a back end was fitted on."""
    return "; ".join(f"{s['trials']} (clean + short telephone-band crops)" if s.get("short_s") else str(s["trials"])
                     for s in specs)

def train_utterances(specs: list[dict]) -> tuple[list[Utterance], np.ndarray | None]:
    """The TRAIN-split utterances of the manifests in ``specs`` (:func:`manifest_specs`), speaker
    ids prefixed by corpus when there are several, and each file's sampling probability (None:
    uniform)."""
    utts: list[Utterance] = []
    weights: list[float] = []
    for spec in specs:
        found = from_manifest(_path(spec["path"]), splits=["train"])
        if len(specs) > 1:  # speaker ids stay distinct per corpus
            found = [replace(u, key=f"{spec['name']}/{u.key}", speaker=f"{spec['name']}/{u.speaker}") for u in found]
        utts.extend(found)
        weights.extend([spec["weight"]] * len(found))
    w = np.asarray(weights, dtype=np.float64)
    return utts, (None if len(w) == 0 or np.all(w == w[0]) else w / w.sum())


def dev_conditions(specs: list[dict], legacy: bool = False) -> list[tuple[str, DevList, list[np.ndarray]]]:
    """Each dev list's recordings as they are and, where the spec has ``short_s``, seeded short
    telephone-band crops of them: ``(condition name, list, waves)``. Legacy names: waves, short."""
    out = []
    for spec in specs:
        dev = DevList.read(_path(spec["trials"]), _path(spec["root"]))
        stem = _path(spec["trials"]).stem
        out.append(("waves" if legacy else stem, dev, dev.waves))
        if spec.get("short_s"):
            name = "short" if legacy else f"{stem}-short{float(spec['short_s']):g}s-tel"
            out.append((name, dev, short_crops(dev.waves, float(spec["short_s"]))))
    return out


def short_crops(waves: Sequence[np.ndarray], seconds: float, seed: int = 12345, telephone_band: bool = True
                ) -> list[np.ndarray]:
    """A seeded ``seconds``-long crop of each wave, through the telephone channel unless
    ``telephone_band`` is False."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = []
    for w in waves:
        start = int(rng.integers(0, max(1, len(w) - n)))
        crop = w[start:start + n]
        out.append(telephone(crop, rng) if telephone_band else crop)
    return out


def per_speaker_choice(utts: Sequence[Utterance], per_speaker: int, seed: int = 0) -> list[Utterance]:
    """A seeded choice of at most ``per_speaker`` recordings of each speaker: speakers in
    first-seen order, each one's recordings in their listed order."""
    groups: dict[str, list[Utterance]] = {}
    for u in utts:
        groups.setdefault(u.speaker, []).append(u)
    rng = np.random.default_rng(seed)
    return [g[i] for g in groups.values() for i in sorted(rng.permutation(len(g))[:int(per_speaker)])]


def speaker_cohort(utts: Sequence[Utterance], embed: Embed, per_speaker: int | None = None,
                   seed: int = 0, load: Callable[[Utterance], np.ndarray] | None = None) -> np.ndarray:
    """One normalised mean embedding per speaker of ``utts`` (their first 4 s), in first-seen order;
    ``per_speaker``: a seeded choice of at most that many recordings of each speaker; ``load``:
    an utterance's waveform (default: read its file)."""
    if per_speaker:
        utts = per_speaker_choice(utts, int(per_speaker), seed)
    load = load or (lambda u: sf.read(u.path, dtype="float32")[0])
    by_spk: dict[str, list[np.ndarray]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(load(u)[:int(SR * COHORT_CLIP_S)])
    return np.stack([l2_normalize(embed(waves).mean(0)) for waves in by_spk.values()])


def refit_backend(verifier: Verifier, recipe: dict) -> tuple[FittedBackend, np.ndarray]:
    """The back end of ``verifier``'s model fitted afresh as the embedding task's export fits it,
    from the recipe's dev lists and training manifests (``data``) and ``export`` settings; also the
    AS-norm cohort it was fitted with."""
    data, exp = recipe["data"], recipe.get("export") or {}

    def embed(waves: Sequence[np.ndarray]) -> np.ndarray:
        return verifier.embed_waves(list(waves))

    specs, legacy = dev_specs(data, exp)
    conditions = [dev.condition(name, waves, embed) for name, dev, waves in dev_conditions(specs, legacy)]
    utts, _ = train_utterances(manifest_specs(data))
    cohort = speaker_cohort(utts, embed, exp.get("cohort_files"))
    fitted = fit_backend(conditions, cohort, asnorm=bool(exp.get("asnorm", True)), top_k=int(exp.get("top_k", 50)),
                         far=exp.get("far", [0.01, 0.001]), fitted_on=fitted_on(specs))
    return fitted, cohort


def _path(p: str) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(p)))
