"""Optimizers (adam, adamw, sgd) and learning-rate schedules from a recipe.

``schedule`` settings: ``name`` constant | cosine | step; ``warmup_epochs`` (linear warm-up from
0, before cosine or step; 0 by default); ``min_lr`` (cosine floor); ``step_epochs`` and ``gamma``
(step decay). The rate is a function of the fractional epoch, set before every optimizer step,
so a resumed run follows exactly the schedule an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from speakerverify.train.recipe import RecipeError, check_keys

OPTIM_DEFAULTS: dict[str, Any] = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "grad_clip": None}
SCHEDULE_DEFAULTS: dict[str, Any] = {"name": "constant", "warmup_epochs": 0}

OPTIM_KEYS = {"name", "lr", "weight_decay", "grad_clip", "betas", "eps", "momentum", "nesterov"}
SCHEDULE_KEYS = {"name", "warmup_epochs", "min_lr", "step_epochs", "gamma"}


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    check_keys(cfg, "optim", OPTIM_KEYS)
    name = cfg.get("name", "adam")
    lr = _positive(cfg.get("lr", 1e-3), "optim.lr")
    wd = float(cfg.get("weight_decay") or 0.0)
    params = [p for p in params if p.requires_grad]
    if name in ("adam", "adamw"):
        kwargs: dict[str, Any] = {"lr": lr, "weight_decay": wd}
        if "betas" in cfg:
            kwargs["betas"] = tuple(float(b) for b in cfg["betas"])
        if "eps" in cfg:
            kwargs["eps"] = float(cfg["eps"])
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, **kwargs)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=float(cfg.get("momentum", 0.9)),
                               nesterov=bool(cfg.get("nesterov", False)))
    raise RecipeError(f"recipe: optim.name must be adam, adamw or sgd, got {name!r}")


def _positive(value: Any, key: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RecipeError(f"recipe: {key} must be a number, got {value!r}") from None
    if not v > 0:
        raise RecipeError(f"recipe: {key} must be positive, got {value!r}")
    return v


class LrSchedule:
    """Learning rate as a function of the fractional epoch."""

    def __init__(self, cfg: dict[str, Any], base_lr: float, epochs: int) -> None:
        check_keys(cfg, "schedule", SCHEDULE_KEYS)
        self.name = cfg.get("name", "constant")
        if self.name not in ("constant", "cosine", "step"):
            raise RecipeError(f"recipe: schedule.name must be constant, cosine or step, got {self.name!r}")
        self.base_lr = base_lr
        self.epochs = epochs
        self.warmup = float(cfg.get("warmup_epochs") or 0)
        if self.warmup < 0 or (self.warmup > 0 and self.warmup >= epochs):
            raise RecipeError(f"recipe: schedule.warmup_epochs must be in [0, epochs), got {self.warmup}")
        self.min_lr = float(cfg.get("min_lr", 0.0))
        self.step_epochs = float(cfg.get("step_epochs", 10))
        self.gamma = float(cfg.get("gamma", 0.1))
        if self.name == "step" and self.step_epochs <= 0:
            raise RecipeError("recipe: schedule.step_epochs must be positive")
        self.position = 0.0

    def lr_at(self, epoch: float) -> float:
        if self.warmup and epoch < self.warmup:
            return self.base_lr * (epoch + 1e-3) / self.warmup
        if self.name == "constant":
            return self.base_lr
        t = epoch - self.warmup
        if self.name == "step":
            return self.base_lr * self.gamma ** math.floor(t / self.step_epochs)
        span = max(self.epochs - self.warmup, 1e-9)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * min(t / span, 1.0)))

    def apply(self, optimizer: torch.optim.Optimizer, epoch: float) -> float:
        self.position = epoch
        lr = self.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = float(state.get("position", 0.0))
