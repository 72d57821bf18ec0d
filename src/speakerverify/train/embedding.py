"""The ``embedding`` training task: speaker-embedding networks over fbank features.

Objectives (recipe ``loss``): a classification head (``softmax`` or ``aam`` with margin warm-up)
over training speakers (speed-perturbed copies count as new speakers), and/or distillation toward
precomputed teacher embeddings (``scripts/make_teacher_targets.py``). Augmentation on the fly
(``speakerverify.augment``). Model choice on the dev split only (``select.metric: val_mean_eer``):
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
    augment: {p_noise: 0.4, ...}          # speakerverify.augment.AugmentConfig fields
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
from speakerverify.data import Utterance, manifest_hash
from speakerverify.embedding import load_model, write_model_dir
from speakerverify.features import build_frontend
from speakerverify.scoring import cosine, l2_normalize
from speakerverify.scoring.fit import DevCondition, fit_backend
from speakerverify.train.augment import AugmentConfig, WaveAugmenter, spec_augment
from speakerverify.train.devsets import (
    dev_conditions,
    dev_specs,
    fitted_on,
    manifest_specs,
    speaker_cohort,
    train_utterances,
)
from speakerverify.train.losses import build_head, distillation, margin_at
from speakerverify.train.recipe import RecipeError
from speakerverify.train.task import Task, register_task


def _path(p: str) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(p)))


def _speed_bucket(factor: float) -> str:
    return "slow" if factor < 0.93 else "fast" if factor > 1.07 else ""


def freeze_layers(model: nn.Module, prefixes: list[str]) -> None:
    """Fix the parameters whose names start with one of ``prefixes`` (early layers of a
    pretrained network); their BatchNorm statistics stay as loaded too."""
    if not prefixes:
        return
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise RecipeError(f"recipe: model.freeze: no parameter of the model starts with {prefix!r}")
    for name, param in model.named_parameters():
        if any(name.startswith(p) for p in prefixes):
            param.requires_grad_(False)
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and any(name.startswith(p) for p in prefixes):
            module.momentum = 0.0  # running statistics kept as loaded while the module trains


def teacher_embeddings(bundle, train: TrainSet, max_s: float) -> np.ndarray:
    """The frozen model's embedding of every training recording (first ``max_s`` seconds), cached
    under ~/.cache/speakerverify/teacher keyed by the model's weights and the recordings."""
    import hashlib

    weights = hashlib.sha256((bundle.directory / "model.pt").read_bytes()).hexdigest()[:16]
    key = hashlib.sha256(f"{weights}|{manifest_hash(train.utts)}|{max_s}".encode()).hexdigest()[:20]
    cache = Path(os.path.expanduser("~/.cache/speakerverify/teacher")) / f"{bundle.name}-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    from rich.progress import Progress

    n_max = int(max_s * 16000)
    out = []
    with torch.inference_mode(), Progress(transient=True) as bar:
        job = bar.add_task(f"teacher embeddings ({bundle.name})", total=len(train.waves))
        for w in train.waves:
            feats, frames = bundle.frontend(torch.from_numpy(w[:n_max]).unsqueeze(0))
            out.append(bundle.network(feats, frames).float().numpy()[0])
            bar.advance(job)
    emb = np.stack(out).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, emb)
    tmp.replace(cache)
    return emb


class TrainSet:
    """Waveforms in memory, each with a class id, a sampling weight and (optionally) a teacher
    embedding."""

    def __init__(self, data: dict) -> None:
        self.utts: list[Utterance] = []
        self.weights: np.ndarray | None = None
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
            self.utts, self.weights = train_utterances(manifest_specs(data))
        max_speakers = data.get("max_speakers")
        if max_speakers:
            # A seeded subset of the training speakers (learning curves, quick tests).
            base = sorted({self._base_speaker(u) for u in self.utts})
            keep = set(np.random.default_rng(int(data.get("subset_seed", 0))).permutation(base)[: int(max_speakers)])
            mask = np.array([self._base_speaker(u) in keep for u in self.utts])
            if self.teacher is not None:
                self.teacher = self.teacher[torch.from_numpy(mask)]
            if self.weights is not None:
                self.weights = self.weights[mask] / self.weights[mask].sum()
            self.utts = [u for u in self.utts if self._base_speaker(u) in keep]
        self.waves = [_read_mono(u.path) for u in self.utts]
        names = sorted({u.speaker for u in self.utts})
        self.class_of = {n: i for i, n in enumerate(names)}
        self.labels = np.array([self.class_of[u.speaker] for u in self.utts])

    @staticmethod
    def _base_speaker(u: Utterance) -> str:
        return u.speaker.removesuffix("slow").removesuffix("fast")

    @property
    def n_classes(self) -> int:
        return len(self.class_of)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` file indices: uniform, or by the corpora's weights."""
        if self.weights is None:
            return rng.integers(0, len(self.waves), n)
        return rng.choice(len(self.waves), size=n, p=self.weights)

    def speaker_means(self, emb: np.ndarray) -> np.ndarray:
        """(n_classes, D): each class's mean of the (normalised) rows of ``emb``, normalised."""
        out = np.zeros((self.n_classes, emb.shape[1]), dtype=np.float64)
        np.add.at(out, self.labels, l2_normalize(emb))
        return l2_normalize(out)


def _read_mono(path: Path) -> np.ndarray:
    wave, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != 16000:
        raise RecipeError(f"{path}: training audio must be 16 kHz (got {sr} Hz)")
    return wave.mean(axis=1)


@register_task("embedding")
class EmbeddingTask(Task):
    sections = {
        "data": {"manifest", "teacher", "teacher_root", "dev_trials", "dev_root", "crop_s", "batches_per_epoch",
                 "max_speakers", "subset_seed", "manifests", "dev"},
        "frontend": None,
        "model": {"arch", "params", "init", "freeze", "batchnorm"},
        "loss": {"head", "margin", "scale", "warmup_epochs", "head_weight", "distill_weight", "distill_kind",
                 "head_init", "teacher_model", "teacher_max_s", "distill_target"},
        "augment": {f.name for f in fields(AugmentConfig)},
        "export": {"name", "version", "far", "short_dev_s", "asnorm", "top_k", "min_duration_s", "cohort_files"},
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
        model_cfg = dict(recipe["model"])
        init = model_cfg.get("init")
        init_bundle = load_model(_path(init)) if init else None
        if init_bundle is not None:
            # Start from a model directory (an imported CAM++ or ECAPA, or one of ours): its
            # architecture, sizes and front end, unless the recipe repeats them identically.
            for key, theirs in (("arch", init_bundle.config["arch"]), ("params", init_bundle.config.get("params"))):
                if model_cfg.get(key) not in (None, theirs):
                    raise RecipeError(f"recipe: model.{key} differs from the init model's ({init})")
            model_cfg["arch"], model_cfg["params"] = init_bundle.config["arch"], init_bundle.config.get("params")
            if recipe.get("frontend") not in (None, init_bundle.config.get("frontend")):
                raise RecipeError(f"recipe: frontend differs from the init model's ({init})")
            recipe["frontend"] = init_bundle.config.get("frontend")
        self.frontend_cfg = recipe.get("frontend") or {"type": "kaldi-fbank"}
        self.frontend = build_frontend(self.frontend_cfg).to(device)
        self.arch, self.params = model_cfg["arch"], dict(model_cfg.get("params") or {})
        self.model = models.build(self.arch, **self.params).to(device)
        if init_bundle is not None:
            self.model.load_state_dict({k: v.float() for k, v in init_bundle.network.state_dict().items()})
        freeze_layers(self.model, model_cfg.get("freeze") or [])
        self.batchnorm = model_cfg.get("batchnorm", "train")
        if self.batchnorm not in ("train", "fixed"):
            raise RecipeError(f"recipe: model.batchnorm must be 'train' or 'fixed', not {self.batchnorm!r}")
        self.train = TrainSet(self.data_cfg)
        teacher_model = self.loss_cfg.get("teacher_model")
        if teacher_model:
            # Distillation targets from a frozen model: its embedding of each whole, clean training
            # recording (the student sees short augmented crops of it).
            spec = init if teacher_model == "init" else teacher_model
            if not spec:
                raise RecipeError("recipe: loss.teacher_model: init needs model.init")
            emb = teacher_embeddings(load_model(_path(spec)), self.train, float(self.loss_cfg.get("teacher_max_s", 20)))
            if self.loss_cfg.get("distill_target", "file") == "speaker":
                emb = self.train.speaker_means(emb)[self.train.labels]
            self.train.teacher = torch.from_numpy(l2_normalize(emb))
        embed_dim = getattr(self.model, "embed_dim", None) or int(self.params.get("embedding_dim", 192))
        head = self.loss_cfg.get("head", "aam")
        head_params = {k: self.loss_cfg[k] for k in ("margin", "scale") if k in self.loss_cfg and head == "aam"}
        self.head = build_head(head, embed_dim, self.train.n_classes, **head_params).to(device)
        if self.loss_cfg.get("head_init") == "teacher" and self.train.teacher is not None and head == "aam":
            # Class weights start at the teacher's speaker centroids: the margin loss is meaningful
            # from the first step instead of first pulling the network toward random directions.
            with torch.no_grad():
                means = self.train.speaker_means(self.train.teacher.numpy())
                self.head.weight.copy_(torch.from_numpy(means).float())
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
        if self.batchnorm == "fixed":
            # Fine-tuning a pretrained network on little data: every BatchNorm normalises with the
            # statistics it was loaded with (eval mode), so they neither move nor switch to batch ones.
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        if hasattr(self.head, "set_margin"):
            self.head.set_margin(margin_at(epoch, self.head.final_margin, int(self.loss_cfg.get("warmup_epochs", 0))))

    def batches(self, epoch: int) -> Iterator[dict]:
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        self.augmenter.rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
        per_rank = self.batches_per_epoch // self.world_size
        for _ in range(per_rank):
            length = int(rng.uniform(*self.crop) * 16000)
            idx = self.train.sample(rng, self.batch_size)
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
        with self.precision():
            emb = model(feats, frames)
        emb = emb.float()
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
    def _dev_data(self) -> list[dict]:
        """Dev conditions: each a name, its recordings (waves), trial indices and labels."""
        if self._dev is None:
            self._dev = [{"name": name, "waves": waves, "ia": dev.ia, "ib": dev.ib, "labels": dev.labels}
                         for name, dev, waves in dev_conditions(*dev_specs(self.data_cfg, self.recipe.get("export")))]
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
        out = {}
        for cond in self._dev_data():
            emb = self.embed(model, cond["waves"])
            out[cond["name"]] = (emb, cosine(emb[cond["ia"]], emb[cond["ib"]]), cond["labels"])
        return out

    def validate(self, model: nn.Module) -> dict[str, float]:
        """EER (%) per dev condition and their mean, ``val_mean_eer`` (the model-choice rule)."""
        res = {}
        for name, (_, scores, labels) in self._dev_scores(model).items():
            key = {"waves": "val_eer", "short": "val_short_tel_eer"}.get(name, f"val_eer_{name}")
            res[key] = 100 * metrics.eer(scores, labels)[0]
        res["val_mean_eer"] = float(np.mean(list(res.values())))
        return res

    def export(self, model: nn.Module, out_dir: Path, metrics_: dict, *, arch: str | None = None,
               params: dict | None = None) -> None:
        """Write ``model`` with a back end fitted on dev; ``arch``/``params`` describe a network
        other than the recipe's (an ensemble of trained members, ``scripts/make_ensemble.py``)."""
        exp = self.recipe.get("export") or {}
        arch, params = arch or self.arch, self.params if params is None else params
        conds = {c["name"]: c for c in self._dev_data()}
        conditions = []
        for name, (emb, raw, labels) in self._dev_scores(model).items():
            d = conds[name]
            seconds = np.array([len(w) / 16000 for w in d["waves"]])
            conditions.append(DevCondition(name, raw, labels, np.minimum(seconds[d["ia"]], seconds[d["ib"]]),
                                           emb[d["ia"]], emb[d["ib"]]))
        cohort = self._cohort(model)
        fitted = fit_backend(conditions, cohort, asnorm=bool(exp.get("asnorm", True)), top_k=int(exp.get("top_k", 50)),
                             far=exp.get("far", [0.01, 0.001]),
                             fitted_on=fitted_on(dev_specs(self.data_cfg, self.recipe.get("export"))[0]))
        write_model_dir(out_dir, arch, params, self.frontend_cfg, model.state_dict(),
                        name=exp.get("name", arch), version=str(exp.get("version", "1")),
                        min_duration_s=float(exp.get("min_duration_s", 0.1)), backend=fitted.backend,
                        cohort=cohort if fitted.keep_cohort else None)

    def _cohort(self, model: nn.Module) -> np.ndarray:
        """One mean embedding per training speaker (unperturbed clips), the AS-norm cohort;
        ``export.cohort_files``: a seeded choice of a few recordings per speaker (bounds export time)."""
        keep = [i for i, u in enumerate(self.train.utts) if "-sp" not in u.key or "-sp1.00" in u.key]
        wave_of = {id(self.train.utts[i]): self.train.waves[i] for i in keep}
        return speaker_cohort([self.train.utts[i] for i in keep], lambda w: self.embed(model, list(w)),
                              (self.recipe.get("export") or {}).get("cohort_files"), seed=self.seed,
                              load=lambda u: wave_of[id(u)])
