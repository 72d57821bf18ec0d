"""The ``embedding`` training task: speaker-embedding networks over fbank features.

Objectives (recipe ``loss``): a classification head (``softmax`` or ``aam`` with margin warm-up)
over training speakers (speed-perturbed copies count as new speakers), and/or distillation toward
precomputed teacher embeddings (``scripts/make_teacher_targets.py``). Augmentation on the fly
(``speakerverify.train.augment``). Model choice on the dev split only (``select.metric: val_mean_eer``):
EER on the dev trial list, clean and as short telephone-band crops. Export fits the back end on
dev: AS-norm cohort (training speakers), logistic calibration, thresholds at the EER point and
at fixed false-accept rates.

Recipe keys::

    data:
      manifest: ../shared/data/corpora/libri-train-clean/manifest.csv   # train split used
      teacher: ~/.cache/speakerverify/distill/teacher-campplus.npz      # optional
      teacher_root: ~/.cache/speakerverify/distill                      # its perturbed audio
      dev_trials: ../shared/data/trials/libri-train-clean-dev.txt
      dev_root: ../shared/data
      crop_s: [0.5, 3.0]
      batches_per_epoch: 200
      max_speakers: null          # optional: a seeded subset of the training speakers
    frontend: {type: kaldi-fbank}
    model: {arch: fastnet, params: {...}}
    loss: {head: aam, margin: 0.2, scale: 30, warmup_epochs: 3, head_weight: 1.0,
           distill_weight: 4.0, distill_kind: cosine}
    augment: {p_noise: 0.4, ...}          # speakerverify.train.augment.AugmentConfig fields
    export: {name: default, version: "1", far: [0.01, 0.001], short_dev_s: 1.0}
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from speakerverify import metrics, models
from speakerverify.data import Utterance, from_manifest, manifest_hash, read_trials
from speakerverify.embedding import write_model_dir
from speakerverify.features import build_frontend
from speakerverify.scoring import cosine, l2_normalize
from speakerverify.scoring.fit import DevCondition, fit_backend
from speakerverify.train.augment import AugmentConfig, WaveAugmenter, spec_augment, telephone
from speakerverify.train.losses import build_head, distillation, margin_at
from speakerverify.train.task import Task, register_task


def _path(p: str) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(p)))


def _speed_bucket(factor: float) -> str:
    return "slow" if factor < 0.93 else "fast" if factor > 1.07 else ""


class TrainSet:
    """Waveforms in memory, each with a class id and (optionally) a teacher embedding."""

    def __init__(self, data: dict) -> None:
        self.utts: list[Utterance] = []
        teacher = data.get("teacher")
        if teacher:
            npz = np.load(_path(teacher))
            root = _path(data.get("teacher_root", _path(teacher).parent))
            classes = [f"{s}{_speed_bucket(float(f))}" for s, f in zip(npz["speakers"], npz["factors"], strict=True)]
            self.teacher = torch.from_numpy(l2_normalize(npz["embeddings"]))
            for rel, cls in zip(npz["files"], classes, strict=True):
                self.utts.append(Utterance(key=str(rel), speaker=cls, path=root / str(rel)))
        else:
            self.teacher = None
            self.utts = from_manifest(_path(data["manifest"]), splits=["train"])
        max_speakers = data.get("max_speakers")
        if max_speakers:
            # A seeded subset of the training speakers (learning curves, quick tests).
            base = sorted({self._base_speaker(u) for u in self.utts})
            keep = set(np.random.default_rng(int(data.get("subset_seed", 0))).permutation(base)[: int(max_speakers)])
            if self.teacher is not None:
                mask = np.array([self._base_speaker(u) in keep for u in self.utts])
                self.teacher = self.teacher[torch.from_numpy(mask)]
            self.utts = [u for u in self.utts if self._base_speaker(u) in keep]
        self.waves = [sf.read(u.path, dtype="float32")[0] for u in self.utts]
        names = sorted({u.speaker for u in self.utts})
        self.class_of = {n: i for i, n in enumerate(names)}
        self.labels = np.array([self.class_of[u.speaker] for u in self.utts])

    @staticmethod
    def _base_speaker(u: Utterance) -> str:
        return u.speaker.removesuffix("slow").removesuffix("fast")

    @property
    def n_classes(self) -> int:
        return len(self.class_of)


@register_task("embedding")
class EmbeddingTask(Task):
    sections = {
        "data": {"manifest", "teacher", "teacher_root", "dev_trials", "dev_root", "crop_s", "batches_per_epoch",
                 "max_speakers", "subset_seed"},
        "frontend": None,
        "model": {"arch", "params"},
        "loss": {"head", "margin", "scale", "warmup_epochs", "head_weight", "distill_weight", "distill_kind"},
        "augment": {f.name for f in fields(AugmentConfig)},
        "export": {"name", "version", "far", "short_dev_s", "asnorm", "top_k", "min_duration_s"},
    }
    keys = {"batch_size"}

    def __init__(self, recipe: dict, device: torch.device, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(recipe, device, rank, world_size)
        self.seed = int(recipe.get("seed", 0))
        self.data_cfg = recipe["data"]
        self.loss_cfg = dict(recipe.get("loss") or {})
        self.aug_cfg = AugmentConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                                        for k, v in (recipe.get("augment") or {}).items()
                                        if k in {f.name for f in fields(AugmentConfig)}})
        self.frontend_cfg = recipe.get("frontend") or {"type": "kaldi-fbank"}
        self.frontend = build_frontend(self.frontend_cfg).to(device)
        model_cfg = recipe["model"]
        self.arch, self.params = model_cfg["arch"], dict(model_cfg.get("params") or {})
        self.model = models.build(self.arch, **self.params).to(device)
        self.train = TrainSet(self.data_cfg)
        embed_dim = getattr(self.model, "embed_dim", 192)
        head = self.loss_cfg.get("head", "aam")
        head_params = {k: self.loss_cfg[k] for k in ("margin", "scale") if k in self.loss_cfg and head == "aam"}
        self.head = build_head(head, embed_dim, self.train.n_classes, **head_params).to(device)
        self.batch_size = int(recipe.get("batch_size", 64))
        self.crop = tuple(self.data_cfg.get("crop_s", (0.5, 3.0)))
        self.batches_per_epoch = int(self.data_cfg.get("batches_per_epoch", 200))
        self.augmenter = WaveAugmenter(self.aug_cfg, seed=self.seed * 1000 + rank, babble_pool=self.train.waves)
        self.spec_gen = torch.Generator().manual_seed(self.seed * 1000 + rank + 7)
        self._dev = None

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"head": self.head}

    def manifest_hash(self) -> str:
        return manifest_hash(self.train.utts)

    def on_epoch_start(self, epoch: int) -> None:
        if hasattr(self.head, "set_margin"):
            self.head.set_margin(margin_at(epoch, self.head.final_margin, int(self.loss_cfg.get("warmup_epochs", 0))))

    def batches(self, epoch: int) -> Iterator[dict]:
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        self.augmenter.rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
        n = len(self.train.waves)
        per_rank = self.batches_per_epoch // self.world_size
        for _ in range(per_rank):
            length = int(rng.uniform(*self.crop) * 16000)
            idx = rng.integers(0, n, self.batch_size)
            waves = []
            for i in idx:
                w = self.train.waves[i]
                if len(w) <= length:
                    w = np.pad(w, (0, length - len(w)), mode="wrap")
                start = int(rng.integers(0, len(w) - length + 1))
                waves.append(self.augmenter(w[start:start + length]))
            batch = {"wave": torch.from_numpy(np.stack(waves)),
                     "label": torch.from_numpy(self.train.labels[idx]).long()}
            if self.train.teacher is not None:
                batch["teacher"] = self.train.teacher[idx]
            yield batch

    def loss(self, batch: dict, model: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        wave = batch["wave"].to(self.device)
        with torch.no_grad():
            feats, frames = self.frontend(wave)
            feats = spec_augment(feats, frames, self.aug_cfg, self.spec_gen)
        emb = model(feats, frames)
        logs: dict[str, float] = {}
        total = torch.zeros((), device=self.device)
        w_head = float(self.loss_cfg.get("head_weight", 1.0))
        if w_head:
            ce, logits = self.head(emb, batch["label"].to(self.device))
            total = total + w_head * ce
            logs["ce"] = float(ce.detach())
            logs["acc"] = float((logits.argmax(1) == batch["label"].to(self.device)).float().mean())
        w_kd = float(self.loss_cfg.get("distill_weight", 0.0))
        if w_kd and "teacher" in batch:
            kd = distillation(emb, batch["teacher"].to(self.device), self.loss_cfg.get("distill_kind", "cosine"))
            total = total + w_kd * kd
            logs["kd"] = float(kd.detach())
        return total, logs

    # ---- validation and export (dev split only) -------------------------------------------
    def _dev_data(self) -> dict:
        if self._dev is None:
            trials = read_trials(_path(self.data_cfg["dev_trials"]))
            root = _path(self.data_cfg["dev_root"])
            files = sorted({t.enroll for t in trials} | {t.test for t in trials})
            idx = {f: i for i, f in enumerate(files)}
            waves = [sf.read(root / f, dtype="float32")[0] for f in files]
            short_s = float((self.recipe.get("export") or {}).get("short_dev_s", 1.0))
            rng = np.random.default_rng(12345)
            short = []
            for w in waves:
                n = int(short_s * 16000)
                start = int(rng.integers(0, max(1, len(w) - n)))
                short.append(telephone(w[start:start + n], rng))
            self._dev = {"waves": waves, "short": short, "ia": np.array([idx[t.enroll] for t in trials]),
                         "ib": np.array([idx[t.test] for t in trials]), "labels": np.array([t.label for t in trials])}
        return self._dev

    @torch.no_grad()
    def embed(self, model: nn.Module, waves: list[np.ndarray]) -> np.ndarray:
        was_training = model.training
        model.eval()
        out = []
        for w in waves:
            feats, frames = self.frontend(torch.from_numpy(w).to(self.device).unsqueeze(0))
            out.append(model(feats, frames).float().cpu().numpy()[0])
        model.train(was_training)
        return np.stack(out)

    def _dev_scores(self, model: nn.Module) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        d = self._dev_data()
        out = {}
        for cond in ("waves", "short"):
            emb = self.embed(model, d[cond])
            out[cond] = (emb, cosine(emb[d["ia"]], emb[d["ib"]]), d["labels"])
        return out

    def validate(self, model: nn.Module) -> dict[str, float]:
        res = {}
        for cond, (_, scores, labels) in self._dev_scores(model).items():
            name = "val_eer" if cond == "waves" else "val_short_tel_eer"
            res[name] = 100 * metrics.eer(scores, labels)[0]
        res["val_mean_eer"] = 0.5 * (res["val_eer"] + res["val_short_tel_eer"])
        return res

    def export(self, model: nn.Module, out_dir: Path, metrics_: dict, *, arch: str | None = None,
               params: dict | None = None) -> None:
        """Write ``model`` with a back end fitted on dev; ``arch``/``params`` describe a network
        other than the recipe's (an ensemble of trained members, ``scripts/make_ensemble.py``)."""
        exp = self.recipe.get("export") or {}
        arch, params = arch or self.arch, self.params if params is None else params
        dev = self._dev_scores(model)
        d = self._dev_data()
        conditions = []
        for cond, (emb, raw, labels) in dev.items():
            seconds = np.array([len(w) / 16000 for w in d[cond]])
            conditions.append(DevCondition(cond, raw, labels, np.minimum(seconds[d["ia"]], seconds[d["ib"]]),
                                           emb[d["ia"]], emb[d["ib"]]))
        cohort = self._cohort(model)
        fitted = fit_backend(conditions, cohort, asnorm=bool(exp.get("asnorm", True)), top_k=int(exp.get("top_k", 50)),
                             far=exp.get("far", [0.01, 0.001]),
                             fitted_on=str(self.data_cfg["dev_trials"]) + " (clean + short telephone-band crops)")
        write_model_dir(out_dir, arch, params, self.frontend_cfg, model.state_dict(),
                        name=exp.get("name", arch), version=str(exp.get("version", "1")),
                        min_duration_s=float(exp.get("min_duration_s", 0.1)), backend=fitted.backend,
                        cohort=cohort if fitted.keep_cohort else None)

    def _cohort(self, model: nn.Module) -> np.ndarray:
        """One mean embedding per training speaker (unperturbed clips), the AS-norm cohort."""
        by_spk: dict[str, list[int]] = {}
        for i, u in enumerate(self.train.utts):
            if "-sp" in u.key and "-sp1.00" not in u.key:
                continue
            by_spk.setdefault(u.speaker, []).append(i)
        emb = self.embed(model, [self.train.waves[i][:16000 * 4] for idx in by_spk.values() for i in idx])
        out, k = [], 0
        for idx in by_spk.values():
            out.append(l2_normalize(emb[k:k + len(idx)].mean(0)))
            k += len(idx)
        return np.stack(out)
