"""The ``pairs`` task: the seed notebook's training of a Siamese model on same/different pairs.

For each speaker with n clips: its L = n(n-1)/2 same-speaker pairs, and L different-speaker pairs
(a random clip of the speaker against a random clip of a random other speaker, seeded). Binary
cross-entropy on the model's sigmoid score. Some training speakers are held out to choose the
epoch and the decision threshold; the test set is never read.

Recipe keys::

    model: {arch: siamese-gru-seed, params: {hidden: 128}}  # a registered model with logit(ea, eb)
    frontend: {type: seed-stft}    # any features.build_frontend config; fills params.input_dim
    data:
      train: ../shared/data/seed-protocol/trs.pkl   # any data.load_source spec
      splits: [train]              # manifest splits to read (manifests only)
      val_speakers: 10             # hold out the last N speakers (or a list of speaker names)
      limit_speakers: null         # use only the first N speakers (quick experiments, tests)
      split_seed: 0                # seeds the validation pairs, shared by all training seeds
    pairs: {resample: false,       # true: draw new negatives every epoch
            objective: pairs}      # or softmax: the same network trained as a speaker classifier
                                   # over the training clips (the head then scores sigmoid(cosine))
    batch_size: 64                 # global: each of N processes takes batch_size / N of every batch
    export: {name: null, min_duration_s: 0.5}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speakerverify import data, metrics, models
from speakerverify.audio import load_audio
from speakerverify.embedding import write_model_dir
from speakerverify.features import build_frontend
from speakerverify.scoring.fit import DevCondition, fit_backend
from speakerverify.train.recipe import RecipeError, get, require
from speakerverify.train.task import Task, register_task

_DATA_KEYS = {"train", "splits", "val_speakers", "limit_speakers", "split_seed"}
FEATURE_CHUNK = 64


def make_pairs(groups: Sequence[Sequence[int]], rng: np.random.Generator) -> np.ndarray:
    """The seed's pairs as rows ``(i, j, label)``: per speaker, all n(n-1)/2 same-speaker pairs and
    as many pairs of one of its clips (at random) against a random clip of a random other speaker."""
    if len(groups) < 2:
        raise RecipeError("pairs: need at least two speakers to make different-speaker pairs")
    rows: list[tuple[int, int, int]] = []
    for s, clips in enumerate(groups):
        positives = list(combinations(clips, 2))
        rows.extend((a, b, 1) for a, b in positives)
        others = [g for t, g in enumerate(groups) if t != s]
        for _ in positives:
            other = others[rng.integers(len(others))]
            rows.append((int(clips[rng.integers(len(clips))]), int(other[rng.integers(len(other))]), 0))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


class PairForward(nn.Module):
    """Both sides of a pair through a Siamese network in one call (so DDP sees every parameter):
    the first input through ``forward``, the second through ``forward_second`` when the network
    has one; returns the head's logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def embed(self, feats: torch.Tensor, frames: torch.Tensor, second: bool = False) -> torch.Tensor:
        if second and hasattr(self.net, "forward_second"):
            return self.net.forward_second(feats, frames)
        return self.net(feats, frames)

    def forward(self, fa: torch.Tensor, na: torch.Tensor, fb: torch.Tensor | None = None,
                nb: torch.Tensor | None = None) -> torch.Tensor:
        """Pair logits; with one input only, its (first-branch) embeddings."""
        if fb is None:
            return self.embed(fa, na)
        return self.net.logit(self.embed(fa, na), self.embed(fb, nb, second=True))


class FeatureBank:
    """Front-end features of every clip, computed once: a padded (N, T, F) tensor and frames."""

    def __init__(self, utts: Sequence[data.Utterance], frontend: nn.Module) -> None:
        waves = [u.wave if u.wave is not None else load_audio(u.path) for u in utts]  # type: ignore[arg-type]
        feats, frames = [], []
        with torch.no_grad():
            for start in range(0, len(waves), FEATURE_CHUNK):
                chunk = waves[start:start + FEATURE_CHUNK]
                lengths = torch.tensor([len(w) for w in chunk])
                batch = torch.zeros(len(chunk), int(lengths.max()))
                for i, w in enumerate(chunk):
                    batch[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
                f, n = frontend(batch, lengths)
                feats.extend(f[i, : n[i]] for i in range(len(chunk)))
                frames.append(n)
        self.frames = torch.cat(frames)
        self.feats = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)

    def take(self, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(idx)
        frames = self.frames[index]
        width = int(frames.max()) if len(index) else 0
        return self.feats[index, :width].to(device), frames.to(device)


class _Batches:
    """Global batches of ``batch_size`` pairs, each split into equal contiguous parts, one per rank:
    N processes see exactly the batches one process would (``len(pairs)`` is a multiple of N)."""

    def __init__(self, pairs: np.ndarray, batch_size: int, task: PairsTask) -> None:
        self.pairs, self.batch_size, self.task = pairs, batch_size, task

    def __len__(self) -> int:
        return -(-len(self.pairs) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        world, rank = self.task.world_size, self.task.rank
        for start in range(0, len(self.pairs), self.batch_size):
            chunk = self.pairs[start:start + self.batch_size]
            part = len(chunk) // world
            yield self.task.batch(chunk[rank * part:(rank + 1) * part])


@register_task("pairs")
class PairsTask(Task):
    sections = {"model": {"arch", "params"}, "frontend": None, "data": _DATA_KEYS, "pairs": {"resample", "objective"},
                "export": {"name", "min_duration_s"}}
    keys = {"batch_size"}

    def __init__(self, recipe: dict, device: torch.device, rank: int, world_size: int) -> None:
        super().__init__(recipe, device, rank, world_size)
        self.seed = int(get(recipe, "seed", 0, kind=int))
        self.frontend_cfg = dict(get(recipe, "frontend", {"type": "seed-stft"}, kind=dict))
        self.frontend = build_frontend(dict(self.frontend_cfg))
        self.arch = require(recipe, "model.arch", kind=str)
        self.params = dict(get(recipe, "model.params", {}, kind=dict) or {})
        self.params.setdefault("input_dim", int(self.frontend.dim))
        net = self._build_network()
        self.model = PairForward(net)
        batch_size = int(get(recipe, "batch_size", 64, kind=int))
        if batch_size < 1 or batch_size % world_size:
            raise RecipeError(f"recipe: batch_size {batch_size} must be a positive multiple of the "
                              f"{world_size} processes")
        self.batch_size = batch_size
        self.resample = bool(get(recipe, "pairs.resample", False, kind=bool))
        train_utts, val_utts, self.all_utts = self._load_data()
        self.train_bank = FeatureBank(train_utts, self.frontend)
        self.val_bank = FeatureBank(val_utts, self.frontend)
        self.train_groups = _groups(train_utts)
        self.n_val_speakers = len(_groups(val_utts))
        self.val_pairs = make_pairs(_groups(val_utts), np.random.default_rng(self.split_seed))
        self.fixed_pairs = make_pairs(self.train_groups, np.random.default_rng(self.seed))
        self.objective = get(recipe, "pairs.objective", "pairs", kind=str)
        self.classifier: nn.Module | None = None
        if self.objective == "softmax":
            self._setup_classifier(net, train_utts)
        elif self.objective != "pairs":
            raise RecipeError(f"recipe: pairs.objective must be pairs or softmax, got {self.objective!r}")

    def _setup_classifier(self, net: nn.Module, train_utts: Sequence[data.Utterance]) -> None:
        """Softmax over the training speakers; the pair head is fixed to sigmoid(cosine)."""
        if not hasattr(getattr(net, "head", None), "dense"):
            raise RecipeError(f"recipe: pairs.objective softmax needs a model with a similarity head, not {self.arch}")
        with torch.no_grad():
            net.head.dense.weight.fill_(1.0)
            net.head.dense.bias.zero_()
            was = net.training
            dim = int(net.eval()(*self.train_bank.take(np.array([0]), torch.device("cpu"))).shape[-1])
            net.train(was)
        net.head.requires_grad_(False)
        names = list(dict.fromkeys(u.speaker for u in train_utts))
        self.clip_labels = np.array([names.index(u.speaker) for u in train_utts])
        self.classifier = nn.Linear(dim, len(names))

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.classifier} if self.classifier is not None else {}

    def _build_network(self) -> nn.Module:
        try:
            net = models.build(self.arch, **self.params)
        except KeyError as exc:
            raise RecipeError(f"recipe: {exc.args[0]}") from None
        except TypeError as exc:
            raise RecipeError(f"recipe: model.params do not fit {self.arch}: {exc}") from None
        if not hasattr(net, "logit"):
            raise RecipeError(f"recipe: model {self.arch} has no pair head (logit); the pairs task trains "
                              "Siamese models such as siamese-gru-seed")
        return net

    def _load_data(self) -> tuple[list[data.Utterance], list[data.Utterance], list[data.Utterance]]:
        get(self.recipe, "data", kind=dict)
        spec = require(self.recipe, "data.train", kind=str)
        if Path(spec).name == "tes.pkl":
            raise RecipeError(f"recipe: data.train {spec} is the seed protocol's test set; train on trs.pkl")
        splits = get(self.recipe, "data.splits", ["train"], kind=list)
        utts = data.load_source(spec, splits)
        speakers = list(dict.fromkeys(u.speaker for u in utts))
        limit = get(self.recipe, "data.limit_speakers", None, kind=int)
        if limit:
            speakers = speakers[:limit]
            utts = [u for u in utts if u.speaker in set(speakers)]
        self.split_seed = int(get(self.recipe, "data.split_seed", 0, kind=int))
        held = get(self.recipe, "data.val_speakers", 10, kind=(int, list))
        if isinstance(held, int):
            if not 2 <= held <= len(speakers) - 2:
                raise RecipeError(f"recipe: data.val_speakers {held} must leave at least two speakers on "
                                  f"each side of {len(speakers)}")
            val_speakers = set(speakers[len(speakers) - held:])
        else:
            val_speakers = {str(s) for s in held}
            missing = val_speakers - set(speakers)
            if missing:
                raise RecipeError(f"recipe: data.val_speakers not in the data: {', '.join(sorted(missing))}")
        train = [u for u in utts if u.speaker not in val_speakers]
        val = [u for u in utts if u.speaker in val_speakers]
        return train, val, utts

    def manifest_hash(self) -> str:
        return data.manifest_hash(self.all_utts)

    def epoch_pairs(self, epoch: int) -> np.ndarray:
        """This epoch's pairs in this epoch's order (all ranks), before sharding."""
        pairs = self.fixed_pairs
        if self.resample and epoch > 0:
            pairs = make_pairs(self.train_groups, np.random.default_rng([self.seed, epoch]))
        order = np.random.default_rng([self.seed, epoch, 1]).permutation(len(pairs))
        return pairs[order]

    def batches(self, epoch: int) -> _Batches:
        if self.classifier is not None:  # rows (clip, speaker) in this epoch's order
            order = np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.clip_labels))
            rows = np.c_[order, self.clip_labels[order]]
        else:
            rows = self.epoch_pairs(epoch)
        return _Batches(rows[: len(rows) - len(rows) % self.world_size], self.batch_size, self)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        fa, na = self.train_bank.take(rows[:, 0], self.device)
        if self.classifier is not None:
            return fa, na, torch.from_numpy(rows[:, 1]).long().to(self.device)
        fb, nb = self.train_bank.take(rows[:, 1], self.device)
        return fa, na, fb, nb, torch.from_numpy(rows[:, 2]).float().to(self.device)

    def loss(self, batch: tuple[torch.Tensor, ...], model: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        if self.classifier is not None:
            feats, frames, speakers = batch
            with self.precision():
                emb = model(feats, frames)
            ce = F.cross_entropy(self.classifier(emb.float()), speakers)
            return ce, {"ce": float(ce.detach())}
        fa, na, fb, nb, labels = batch
        with self.precision():
            logits = model(fa, na, fb, nb)
        logits = logits.float()
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        acc = ((logits >= 0).float() == labels).float().mean().item()
        return loss, {"acc": acc}

    def pair_scores(self, model: nn.Module, bank: FeatureBank, pairs: np.ndarray) -> np.ndarray:
        """Sigmoid scores of ``pairs`` (each clip embedded once per branch)."""
        pf = model.module if hasattr(model, "module") else model
        idx = np.arange(len(bank.frames))
        first, second = [], []
        for start in range(0, len(idx), 256):
            f, n = bank.take(idx[start:start + 256], self.device)
            first.append(pf.embed(f, n))
            second.append(pf.embed(f, n, second=True))
        ea, eb = torch.cat(first), torch.cat(second)
        i, j = torch.from_numpy(pairs[:, 0]).to(self.device), torch.from_numpy(pairs[:, 1]).to(self.device)
        return torch.sigmoid(pf.net.logit(ea[i], eb[j])).double().cpu().numpy()

    def validate(self, model: nn.Module) -> dict[str, float]:
        scores = self.pair_scores(model, self.val_bank, self.val_pairs)
        labels = self.val_pairs[:, 2]
        eer, _ = metrics.eer(scores, labels)
        p = np.clip(scores, 1e-7, 1 - 1e-7)
        bce = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
        return {"val_loss": bce, "val_eer": 100 * eer, "val_acc": metrics.accuracy(scores, labels, 0.5)}

    def export(self, model: nn.Module, out_dir: Path, metrics_row: dict) -> None:
        labels = self.val_pairs[:, 2]
        val_scores = self.pair_scores(model, self.val_bank, self.val_pairs)
        # The model's own sigmoid score: no calibration, thresholds on the score.
        backend = fit_backend([DevCondition("validation", val_scores, labels)], asnorm=False, calibrate=False,
                              far=(), score=None).backend
        threshold = backend["thresholds"]["eer"]
        backend["thresholds"]["sigmoid_half"] = 0.5
        eer = metrics.eer(val_scores, labels)[0]
        train_scores = self.pair_scores(model, self.train_bank, self.fixed_pairs)
        train_labels = self.fixed_pairs[:, 2]
        net = model.net
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        digest = hashlib.sha256(b"".join(v.contiguous().numpy().tobytes() for v in state.values()))
        backend["validation"] = {"pairs": len(labels), "speakers": self.n_val_speakers, "eer_percent": 100 * eer,
                                 "accuracy_at_eer_threshold": metrics.accuracy(val_scores, labels, threshold),
                                 "accuracy_at_half": metrics.accuracy(val_scores, labels, 0.5)}
        training = {"task": "pairs", "seed": self.seed, "epoch": metrics_row.get("epoch"),
                    "train_pairs": len(train_labels), "train_speakers": len(self.train_groups),
                    "train_pair_accuracy": metrics.accuracy(train_scores, train_labels, 0.5),
                    "data_manifest_hash": self.manifest_hash()}
        write_model_dir(out_dir, self.arch, self.params, self.frontend_cfg, state,
                        name=str(get(self.recipe, "export.name", None) or self.arch),
                        version=digest.hexdigest()[:8],
                        min_duration_s=float(get(self.recipe, "export.min_duration_s", 0.5, kind=float)),
                        backend=backend, extra={"training": training})


def _groups(utts: Sequence[data.Utterance]) -> list[list[int]]:
    by_speaker: dict[str, list[int]] = {}
    for i, u in enumerate(utts):
        by_speaker.setdefault(u.speaker, []).append(i)
    return list(by_speaker.values())
