"""Model registry: plain ``torch.nn.Module`` classes registered by name.

Contract every registered model follows:

* ``forward(feats, num_frames) -> embeddings``: ``feats`` is a (B, T, F) batch from a front end
  (padded frames are zero), ``num_frames`` the valid frames per row; the result is (B, D).
  Padding must not change an embedding: a padded batch gives the same rows as single inputs.
* optional ``forward_second(feats, num_frames)``: the second branch of a two-branch (non-shared)
  Siamese model; verification then embeds the enrollment side with ``forward`` and the test side
  with ``forward_second``.
* optional ``score(ea, eb) -> (B,)``: the model's own pair score (e.g. a sigmoid head); cosine
  similarity otherwise.
* ``input_dim``: the feature dimension it expects.

Modules in this package register themselves on import; :func:`build` imports them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls

    return deco


def _import_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def build(name: str, **params) -> nn.Module:
    _import_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(names())}")
    return _REGISTRY[name](**params)


def names() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)
