"""An embedding ensemble: several networks over the same features, one joint embedding.

Each member's embedding is L2-normalised and the results are concatenated and scaled by
1/sqrt(M), so the cosine of two ensemble embeddings is the mean of the members' cosines (score
fusion by averaging, stored as one vector: the store, search and ONNX paths need no change).
Members are described as ``{"arch": NAME, "params": {...}}``; build a trained ensemble with
``scripts/make_ensemble.py``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speakerverify.models import build, register


@register("ensemble")
class Ensemble(nn.Module):
    def __init__(self, members: list[dict[str, Any]]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(build(m["arch"], **(m.get("params") or {})) for m in members)
        dims = {getattr(m, "input_dim", None) for m in self.members}
        if len(dims) != 1:
            raise ValueError(f"ensemble members expect different feature sizes: {sorted(map(str, dims))}")
        self.input_dim = dims.pop()

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        parts = [F.normalize(m(feats, num_frames), dim=-1) for m in self.members]
        return torch.cat(parts, dim=-1) / math.sqrt(len(parts))
