"""The training loop: one recipe, one run directory, optionally many processes (``torchrun``).

    speakerverify train RECIPE.yaml --out RUN_DIR [--set key.sub=value ...] [--resume]
    torchrun --no-python --nproc_per_node 2 speakerverify train RECIPE.yaml --out RUN_DIR

A run directory holds::

    recipe.yaml            the resolved recipe (after overrides, framework defaults filled in)
    meta.json              git revision, data manifest hash, torch version, world size, start time,
                           command line (and every resume)
    metrics.jsonl          one line per epoch: train loss and stats, validation metrics, lr, seconds
    checkpoints/last.pt    network, extra modules, optimizer, schedule, epoch, RNG states (per rank),
                           history; rewritten atomically after every epoch
    checkpoints/best.pt    the weights of the best epoch by ``select.metric``
    model/                 exported from best.pt by the task at the end (``--model RUN_DIR`` works)

Only rank 0 writes. ``resume=True`` continues from last.pt and ends exactly where an uninterrupted
run would (data order, learning rate and RNG streams are all restored or recomputed).
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from speakerverify.atomic import write_atomic
from speakerverify.embedding.device import autocast_to, check_amp, pick_device, training_precision
from speakerverify.errors import RecipeError, TrainError
from speakerverify.train import checkpoint as ckpt
from speakerverify.train import distributed as dd
from speakerverify.train.optim import (
    OPTIM_DEFAULTS,
    OPTIM_KEYS,
    SCHEDULE_DEFAULTS,
    SCHEDULE_KEYS,
    LrSchedule,
    build_optimizer,
)
from speakerverify.train.recipe import check_keys, dump_recipe, get, load_recipe
from speakerverify.train.task import Task, get_task

SELECT_DEFAULTS: dict[str, Any] = {"metric": None, "mode": "min", "patience": None}
EpochCallback = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def meta(self) -> Path:
        return self.root / "meta.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def model(self) -> Path:
        return self.root / "model"


def resolve_recipe(recipe_path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Load a recipe, apply overrides, fill in the framework's defaults and check its settings
    (every key, the task's sections included: :meth:`~speakerverify.train.task.Task.check_recipe`)."""
    recipe = load_recipe(recipe_path, overrides)
    get(recipe, "task", kind=str)
    epochs = get(recipe, "epochs", kind=int)
    if epochs < 1:
        raise RecipeError(f"recipe: epochs must be at least 1, got {epochs}")
    recipe.setdefault("seed", 0)
    get(recipe, "seed", kind=int)
    recipe.setdefault("device", "auto")
    recipe.setdefault("amp", "auto")
    check_amp(recipe["amp"])
    for key, defaults in (("optim", OPTIM_DEFAULTS), ("schedule", SCHEDULE_DEFAULTS), ("select", SELECT_DEFAULTS)):
        section = get(recipe, key, {}, kind=dict) or {}
        recipe[key] = {**defaults, **section}
    check_keys(recipe["select"], "select", SELECT_DEFAULTS)
    check_keys(recipe["optim"], "optim", OPTIM_KEYS)
    check_keys(recipe["schedule"], "schedule", SCHEDULE_KEYS)
    if recipe["select"]["mode"] not in ("min", "max"):
        raise RecipeError(f"recipe: select.mode must be min or max, got {recipe['select']['mode']!r}")
    get(recipe, "select.patience", kind=int)
    get(recipe, "optim.grad_clip", kind=float)
    get_task(recipe["task"]).check_recipe(recipe)
    return recipe


def run_training(recipe_path: str | Path, out_dir: str | Path, overrides: Iterable[str] = (),
                 resume: bool = False, *, on_epoch_end: EpochCallback | None = None) -> Path:
    """Train as the recipe says into ``out_dir``; returns the run directory.

    Reads RANK/WORLD_SIZE/LOCAL_RANK (as set by ``torchrun``) to train with DistributedDataParallel.
    ``on_epoch_end(epoch, metrics)`` runs on every rank after each epoch's checkpoint is written.
    """
    info = dd.from_env()
    recipe = resolve_recipe(recipe_path, overrides)
    paths = RunPaths(Path(out_dir))
    _check_run_dir(paths, recipe, resume)
    device = pick_device(recipe["device"], info.local_rank)
    dd.init(info, device)
    trainer: _Trainer | None = None
    try:
        dd.barrier(info)
        trainer = _Trainer(recipe, paths, info, device, resume, str(recipe_path))
        root = trainer.run(on_epoch_end)
        dd.barrier(info)
        return root
    finally:
        # Free the DistributedDataParallel wrapper (it holds the process group) before tearing the
        # group down: left to the garbage collector at interpreter exit, gloo's threads are
        # destroyed late and the process aborts ("terminate called without an active exception").
        del trainer
        gc.collect()
        dd.shutdown(info)


def _check_run_dir(paths: RunPaths, recipe: dict[str, Any], resume: bool) -> None:
    if not resume:
        if paths.root.exists() and (not paths.root.is_dir() or any(paths.root.iterdir())):
            raise TrainError(f"{paths.root}: run directory is not empty; pass --resume to continue it "
                             "or choose another --out")
        return
    if not paths.last.is_file():
        raise TrainError(f"{paths.root}: nothing to resume (no checkpoints/last.pt)")
    stored = load_recipe(paths.recipe)
    if stored != recipe:
        keys = sorted(k for k in set(stored) | set(recipe) if stored.get(k) != recipe.get(k))
        raise TrainError(f"{paths.root}: the recipe differs from the run's recipe.yaml in {', '.join(keys)}; "
                         "resume with the same recipe and overrides")


class _Trainer:
    def __init__(self, recipe: dict[str, Any], paths: RunPaths, info: dd.DistInfo, device: torch.device,
                 resume: bool, recipe_path: str) -> None:
        self.recipe, self.paths, self.info, self.device = recipe, paths, info, device
        self.epochs: int = recipe["epochs"]
        self.select: dict[str, Any] = recipe["select"]
        seed: int = recipe["seed"]
        ckpt.seed_all(seed)
        self.task: Task = get_task(recipe["task"])(recipe, device, info.rank, info.world_size)
        self.amp = training_precision(recipe["amp"], device)
        self.task.precision = partial(autocast_to, self.amp, device)
        # float16 needs loss scaling (small gradients underflow); bfloat16 and float32 do not.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)
        self.model: nn.Module = self.task.model.to(device)
        self.extras: dict[str, nn.Module] = {k: m.to(device) for k, m in self.task.extra_modules().items()}
        self.params = [p for m in self._modules() for p in m.parameters()]
        self.optimizer = build_optimizer(self.params, recipe["optim"])
        self.schedule = LrSchedule(recipe["schedule"], self.optimizer.param_groups[0]["lr"], self.epochs)
        self.grad_clip = recipe["optim"].get("grad_clip")
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.stale = 0
        self.start_epoch = 0
        ckpt.seed_all(seed + 100_003 * (info.rank + 1))
        if resume:
            self._load_last()
        dd.broadcast_parameters(list(self.extras.values()), info)
        self.wrapped: nn.Module = self.model
        if info.active:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.model, device_ids=ids)
        self.console = Console(stderr=True)
        self.show_progress = info.is_main and sys.stderr.isatty()
        if info.is_main:
            self._write_meta(resume, recipe_path)

    def _modules(self) -> list[nn.Module]:
        return [self.model, *self.extras.values()]

    def run(self, on_epoch_end: EpochCallback | None) -> Path:
        for epoch in range(self.start_epoch, self.epochs):
            t0 = time.perf_counter()
            train_metrics, lr = self._train_epoch(epoch)
            rng = dd.gather_objects(ckpt.rng_state(), self.info)
            status = self._on_main(partial(self._finish_epoch, epoch, train_metrics, lr, rng, t0))
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, self.history[-1] if self.history else {})
            if status == "stop":
                break
        digests = dd.gather_objects(dd.weights_digest(self._modules()), self.info)
        self._on_main(lambda: self._export(digests))
        return self.paths.root

    def _on_main(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` on rank 0 and share its result; a failure there stops every rank."""
        if self.info.is_main:
            try:
                result = work()
            except BaseException as exc:
                dd.broadcast_object(("error", f"{type(exc).__name__}: {exc}"), self.info)
                raise
            return dd.broadcast_object(("ok", result), self.info)[1]
        kind, result = dd.broadcast_object(None, self.info)
        if kind == "error":
            raise TrainError(f"rank 0 failed: {result}")
        return result

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], float]:
        for m in self._modules():
            m.train()
        self.task.on_epoch_start(epoch)  # after train(): a task may keep some modules in eval mode
        batches = self.task.batches(epoch)
        total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
        sums: dict[str, float] = {}
        count = 0
        lr = self.schedule.lr_at(epoch)
        with self._progress() as progress:
            bar = progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=total, loss=float("nan"))
            for i, batch in enumerate(batches):
                lr = self.schedule.apply(self.optimizer, epoch + (i / total if total else 0.0))
                loss, stats = self.task.loss(batch, self.wrapped)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                dd.average_gradients(list(self.extras.values()), self.info)
                self.scaler.unscale_(self.optimizer)
                if self.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.params, float(self.grad_clip))
                self.scaler.step(self.optimizer)
                self.scaler.update()
                for k, v in {"loss": loss.item(), **stats}.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
                progress.update(bar, advance=1, loss=sums["loss"] / count)
        dd.average_buffers(self._modules(), self.info)
        keys = sorted(sums)
        totals = dd.sum_across([sums[k] for k in keys] + [float(count)], self.info, self.device)
        if totals[-1] == 0:
            raise TrainError(f"epoch {epoch + 1}: the task produced no batches")
        metrics = {f"train_{k}": totals[i] / totals[-1] for i, k in enumerate(keys)}
        if not math.isfinite(metrics["train_loss"]):
            raise TrainError(f"epoch {epoch + 1}: training loss is not finite; lower optim.lr or set optim.grad_clip")
        return metrics, lr

    def _progress(self) -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                        console=self.console, disable=not self.show_progress, transient=True)

    def _finish_epoch(self, epoch: int, train_metrics: dict[str, float], lr: float, rng: list[Any],
                      t0: float) -> str:
        val = self._validate()
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, **train_metrics, **val, "lr": lr, "seconds": round(seconds, 3)}
        self.history.append(row)
        improved = self._update_best(row)
        self.stale = 0 if improved else self.stale + 1
        ckpt.save({"epoch": epoch + 1, **self._weights(), "optimizer": self.optimizer.state_dict(),
                   "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng,
                   "history": self.history,
                   "best": self.best, "stale": self.stale, "world_size": self.info.world_size}, self.paths.last)
        self._write_metrics()
        shown = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds")
                          and isinstance(v, float))
        self.console.print(f"epoch {epoch + 1}/{self.epochs}  {shown}  ({seconds:.1f} s)"
                           + ("  *" if improved and self.select["metric"] else ""), highlight=False, soft_wrap=True)
        patience = self.select.get("patience")
        return "stop" if patience and self.stale >= patience else "ok"

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        for m in self._modules():
            m.eval()
        try:
            return {k: float(v) for k, v in self.task.validate(self.model).items()}
        finally:
            for m in self._modules():
                m.train()

    def _weights(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "extra": {k: m.state_dict() for k, m in self.extras.items()}}

    def _update_best(self, row: dict[str, Any]) -> bool:
        metric = self.select["metric"]
        if metric is None:
            value = float(row["epoch"])
            better = True
        else:
            if metric not in row:
                raise RecipeError(f"recipe: select.metric {metric!r} is not among the metrics "
                                  f"({', '.join(k for k in row if k != 'epoch')})")
            value = float(row[metric])
            best = None if self.best is None else self.best["value"]
            better = math.isfinite(value) and (
                best is None or (value < best if self.select["mode"] == "min" else value > best))
        if better:
            self.best = {"epoch": row["epoch"], "value": value, "metrics": row}
            ckpt.save({"epoch": row["epoch"], **self._weights(), "metrics": row}, self.paths.best)
        return better

    def _write_metrics(self) -> None:
        write_atomic(self.paths.metrics, "".join(json.dumps(row) + "\n" for row in self.history))

    def _load_last(self) -> None:
        state = ckpt.load(self.paths.last)
        self._load_weights(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.history = list(state["history"])
        self.best = state["best"]
        self.stale = int(state["stale"])
        self.start_epoch = int(state["epoch"])
        rng = state["rng"]
        if len(rng) == self.info.world_size:
            ckpt.set_rng_state(rng[self.info.rank])

    def _load_weights(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for name, module in self.extras.items():
            module.load_state_dict(state["extra"][name])

    def _write_meta(self, resume: bool, recipe_path: str) -> None:
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        command = [sys.executable, *sys.argv]
        self.paths.root.mkdir(parents=True, exist_ok=True)
        if resume and self.paths.meta.is_file():
            meta = json.loads(self.paths.meta.read_text())
            meta.setdefault("resumed", []).append({"time": now, "epoch": self.start_epoch, "command_line": command,
                                                   "world_size": self.info.world_size,
                                                   "git_revision": _git_revision()})
        else:
            self.paths.recipe.write_text(dump_recipe(self.recipe))
            meta = {"git_revision": _git_revision(), "data_manifest_hash": self.task.manifest_hash(),
                    "torch_version": torch.__version__, "python_version": sys.version.split()[0],
                    "world_size": self.info.world_size, "device": str(self.device),
                    "amp": str(self.amp).removeprefix("torch.") if self.amp else "off", "start_time": now,
                    "command_line": command, "recipe_path": recipe_path}
        _write_json(self.paths.meta, meta)

    def _export(self, digests: list[str]) -> None:
        if self.paths.best.is_file():
            best = ckpt.load(self.paths.best)
            self._load_weights(best)
            metrics = best["metrics"]
        else:
            metrics = self.history[-1] if self.history else {}
        for m in self._modules():
            m.eval()
        with torch.no_grad():
            self.task.export(self.model, self.paths.model, metrics)
        meta = json.loads(self.paths.meta.read_text())
        meta.update({"end_time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                     "epochs_run": len(self.history), "best_epoch": metrics.get("epoch"),
                     "rank_weight_digests": digests})
        _write_json(self.paths.meta, meta)
        self.console.print(f"best epoch {metrics.get('epoch')}; model written to {self.paths.model}",
                           highlight=False, soft_wrap=True)


def _write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def _git_revision() -> str | None:
    """HEAD of the checkout the package runs from, ``-dirty`` when its source differs from it."""
    package = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")
