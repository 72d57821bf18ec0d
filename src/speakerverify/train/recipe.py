"""Training recipes: one YAML mapping, ``--set key.sub=value`` overrides, checked key access.

A recipe names its ``task`` (see :mod:`speakerverify.train.task`) and the framework's settings::

    task: pairs              # registered task name
    seed: 0
    epochs: 30
    optim: {name: adam, lr: 0.001, weight_decay: 0.0, grad_clip: null}
    schedule: {name: constant}   # or cosine / step, with warmup_epochs, min_lr, step_epochs, gamma
    select: {metric: val_eer, mode: min}   # picks checkpoints/best.pt
    device: auto             # auto, cpu or cuda
    amp: auto                # mixed precision of the network: auto (bf16/fp16 on CUDA, off on CPU), off, bf16, fp16

Everything else (model, data, batch size...) belongs to the task, which reads it with
:func:`get` / :func:`require` so that a missing or mistyped key is one clear error.

A recipe may start from another one: ``extends: base.yaml`` (relative to the recipe's folder) reads
that recipe first, then this one's settings over it: sections merge key by key, any other value
(lists too) replaces the base's. A second training phase is then only what differs from the first.
The run directory records the merged recipe.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from speakerverify.errors import RecipeError

_MISSING = object()


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a YAML recipe (and the ones it ``extends``) and apply ``key.sub=value`` overrides
    (values parsed as YAML)."""
    return apply_overrides(_read(Path(path), ()), overrides)


def _read(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe")
    if path.resolve() in seen:
        raise RecipeError(f"{path}: recipes extend each other in a loop")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping of settings")
    base = recipe.pop("extends", None)
    if base is None:
        return recipe
    if not isinstance(base, str):
        raise RecipeError(f"{path}: extends must name one recipe file, got {base!r}")
    return _merged(_read(path.parent / base, (*seen, path.resolve())), recipe)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(recipe: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    recipe = copy.deepcopy(recipe)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise RecipeError(f"override {item!r}: expected key.sub=value")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise RecipeError(f"override {item!r}: value is not valid YAML") from None
        node = recipe
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return recipe


def get(recipe: dict[str, Any], key: str, default: Any = _MISSING, kind: type | tuple[type, ...] | None = None
        ) -> Any:
    """The value at dotted ``key``; ``default`` when absent (an error when there is no default)."""
    node: Any = recipe
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise RecipeError(f"recipe: missing required key {key!r}")
            return default
        node = node[part]
    if kind is not None and node is not None and not _is_kind(node, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RecipeError(f"recipe: {key} must be {names}, got {node!r}")
    return node


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def require(recipe: dict[str, Any], key: str, kind: type | tuple[type, ...] | None = None) -> Any:
    value = get(recipe, key, kind=kind)
    if value is None:
        raise RecipeError(f"recipe: {key} must be set")
    return value


def check_keys(section: dict[str, Any], name: str, allowed: Iterable[str]) -> None:
    """Refuse keys a section does not know (catches typos such as ``optim.lrr``)."""
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise RecipeError(f"recipe: unknown key(s) in {name}: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(allowed))})")


def dump_recipe(recipe: dict[str, Any]) -> str:
    return yaml.safe_dump(recipe, sort_keys=False)
