"""A calibrated fusion: networks with different front ends, weighted, as one embedding.

The model's front end is :class:`~speakerverify.features.stacked.StackedFrontend`: member ``i``'s
features (``feat_dims[i]`` wide) followed by one channel that marks its valid frames. Each member
gets exactly its own frames; its embedding is L2-normalised and scaled by ``sqrt(alpha_i)``
(``alpha_i >= 0``, summing to 1) and the parts are concatenated, so the cosine of two fusion
embeddings is the alpha-weighted sum of the members' cosines: score fusion stored as one vector
(the store, search and ONNX export need no change). The weights come from a logistic fusion on
dev (:mod:`speakerverify.scoring.fusion`, ``scripts/make_fusion.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speakerverify.models import build, register


def check_alpha(alpha: Sequence[float], members: int) -> list[float]:
    """``alpha`` as floats: one per member, none negative, summing to 1."""
    w = [float(a) for a in alpha]
    if len(w) != members:
        raise ValueError(f"fusion: {len(w)} weights for {members} members")
    if any(a < 0 for a in w) or not math.isclose(sum(w), 1.0, abs_tol=1e-6):
        raise ValueError(f"fusion weights must be >= 0 and sum to 1, not {w}")
    return w


def combine(parts: Sequence[torch.Tensor], alpha: Sequence[float]) -> torch.Tensor:
    """The fusion embedding of member embeddings ``parts`` (each (B, D_i)): the concatenation of
    ``sqrt(alpha_i)``-scaled L2-normalised parts."""
    return torch.cat([math.sqrt(a) * F.normalize(p, dim=-1) for p, a in zip(parts, alpha, strict=True)], dim=-1)


@register("fusion")
class Fusion(nn.Module):
    def __init__(self, members: list[dict[str, Any]], feat_dims: list[int], alpha: list[float]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("a fusion needs at least two members")
        if len(feat_dims) != len(members):
            raise ValueError(f"fusion: {len(feat_dims)} feature sizes for {len(members)} members")
        self.members = nn.ModuleList(build(m["arch"], **(m.get("params") or {})) for m in members)
        self.feat_dims = [int(d) for d in feat_dims]
        self.alpha = check_alpha(alpha, len(members))
        for i, (m, d) in enumerate(zip(self.members, self.feat_dims, strict=True)):
            if getattr(m, "input_dim", d) != d:
                raise ValueError(f"fusion member {i} expects {m.input_dim} features, its front end gives {d}")
        self.input_dim = sum(d + 1 for d in self.feat_dims)

    def member_inputs(self, feats: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each member's (features, valid frames) from the stacked feature axis."""
        out, start = [], 0
        for d in self.feat_dims:
            valid = feats[:, :, start + d]
            out.append((feats[:, :, start:start + d], valid.sum(1).round().long()))
            start += d + 1
        return out

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        parts = [m(x, n) for m, (x, n) in zip(self.members, self.member_inputs(feats), strict=True)]
        return combine(parts, self.alpha)
