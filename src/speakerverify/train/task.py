"""Training tasks: what to train and how to score it, behind one interface the loop drives.

A task is a class registered by name (``@register_task("pairs")``); a recipe picks it with
``task: pairs``. The task named ``X`` is looked up in the registry, importing
``speakerverify.train.X`` (dashes read as underscores) on first use. Interface::

    class Task:
        def __init__(self, recipe: dict, device: torch.device, rank: int, world_size: int): ...
        model: nn.Module                     # the network being trained (framework wraps it in DDP)
        def extra_modules(self) -> dict[str, nn.Module]   # e.g. loss heads; trained and checkpointed too
        def manifest_hash(self) -> str       # hash of the training data (data.manifest_hash)
        def on_epoch_start(self, epoch: int) -> None      # e.g. margin warm-up
        def batches(self, epoch: int) -> Iterable        # this rank's shard, deterministic given seed+epoch+rank
        def loss(self, batch, model: nn.Module) -> tuple[torch.Tensor, dict[str, float]]  # model may be DDP-wrapped
        def validate(self, model: nn.Module) -> dict[str, float]  # rank 0 only; validation speakers never test
        def export(self, model: nn.Module, out_dir: Path, metrics: dict) -> None  # writes a model dir via
            # embedding.write_model_dir (+ backend.json from scoring.fit.fit_backend on validation)
        sections: dict[str, set[str] | None]  # recipe sections the task reads -> their keys (None: any)
        keys: set[str]                        # the task's top-level recipe keys besides its sections

Recipes are validated before anything is built (:meth:`Task.check_recipe`, called by
``train.loop.resolve_recipe``): a key that neither the framework nor the task knows, at the top
or inside a section, is one :class:`~speakerverify.errors.RecipeError` naming it.

What the loop (:mod:`speakerverify.train.loop`) guarantees a task:

* seeds ``torch``, ``numpy`` and ``random`` from the recipe's ``seed`` before constructing it, so
  every rank builds identical initial weights; it then moves ``model`` and the extra modules to
  ``device``;
* puts ``model`` and the extra modules in training mode, calls ``on_epoch_start(epoch)`` (which may
  put some back in eval mode) then iterates ``batches(epoch)`` (epochs count from 0). Every rank
  must yield the same number of batches (DDP steps in lock-step); ``len()`` of the iterable, when
  available, sizes the progress bar;
* passes ``loss`` the DDP-wrapped ``model`` when ``world_size > 1``: call it (``model(...)``) rather
  than its methods so that gradients are synchronised. Extra modules are not wrapped: the loop
  averages their gradients across ranks itself after ``backward``, so use them directly. The
  numbers in the returned dict are averaged over the epoch and logged as ``train_<name>``;
* sets ``precision`` (the recipe's ``amp``): wrap the *network's* forward pass in
  ``with self.precision():`` and keep front ends, heads and losses outside it, in float32
  (``.float()`` the network's output);
* calls ``validate`` and ``export`` on rank 0 only, with the unwrapped model in eval mode and under
  ``torch.no_grad``; validation metrics are logged as returned (name them ``val_...``) and the
  recipe's ``select.metric`` (one of them) picks the best checkpoint. ``export`` gets the best
  checkpoint's weights and the metrics of its epoch and writes a model directory to ``out_dir``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speakerverify.train.recipe import RecipeError, check_keys, get

#: Top-level recipe keys the framework (train.loop) reads, whatever the task.
FRAMEWORK_KEYS = {"task", "seed", "epochs", "optim", "schedule", "select", "device", "amp"}


class Task:
    """Base class documenting the interface; subclasses override what they need."""

    model: nn.Module
    #: Recipe sections this task reads, with the keys each may hold (None: free-form, e.g. front-end params).
    sections: dict[str, set[str] | None] = {}
    #: Top-level recipe keys the task reads besides its sections.
    keys: set[str] = set()

    @classmethod
    def check_recipe(cls, recipe: dict[str, Any]) -> None:
        """Refuse keys this task and the framework do not know (typos such as ``export.asnrom``)."""
        check_keys(recipe, "the recipe's top level", FRAMEWORK_KEYS | set(cls.sections) | cls.keys)
        for name, allowed in cls.sections.items():
            section = get(recipe, name, {}, kind=dict) or {}
            if allowed is not None:
                check_keys(section, name, allowed)

    def __init__(self, recipe: dict, device: torch.device, rank: int, world_size: int) -> None:
        self.recipe = recipe
        self.device = device
        self.rank = rank
        self.world_size = world_size
        #: Context for the network's forward pass in training (mixed precision; set by the loop).
        self.precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    def extra_modules(self) -> dict[str, nn.Module]:
        return {}

    def manifest_hash(self) -> str:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        return None

    def batches(self, epoch: int) -> Iterable[Any]:
        raise NotImplementedError

    def loss(self, batch: Any, model: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {}

    def export(self, model: nn.Module, out_dir: Path, metrics: dict) -> None:
        raise NotImplementedError


_TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if name in _TASKS and _TASKS[name] is not cls:
            raise ValueError(f"task name {name!r} registered twice")
        _TASKS[name] = cls
        return cls

    return deco


def get_task(name: str) -> Callable[..., Task]:
    if name not in _TASKS:
        module = f"{__package__}.{name.replace('-', '_')}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    if name not in _TASKS:
        known = ", ".join(sorted(_TASKS)) or "none loaded"
        raise RecipeError(f"recipe: unknown task {name!r} (no module {__package__}.{name}; loaded: {known})")
    return _TASKS[name]


def task_names() -> list[str]:
    return sorted(_TASKS)
