"""Training objectives: softmax, additive angular margin softmax, embedding distillation.

The seed's pair BCE lives with its task (:mod:`speakerverify.train.pairs`), on logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SoftmaxHead(nn.Module):
    def __init__(self, embed_dim: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(embed_dim, n_classes)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.fc(emb)
        return F.cross_entropy(logits, labels), logits


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax (ArcFace) with a margin that can be warmed up."""

    def __init__(self, embed_dim: int, n_classes: int, margin: float = 0.2, scale: float = 30.0,
                 easy_margin: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, embed_dim))
        nn.init.xavier_normal_(self.weight)
        self.final_margin = margin
        self.margin = margin
        self.scale = scale
        self.easy_margin = easy_margin

    def set_margin(self, margin: float) -> None:
        self.margin = margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = F.linear(F.normalize(emb), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        sin = torch.sqrt(1.0 - cos.pow(2))
        cos_m, sin_m = math.cos(self.margin), math.sin(self.margin)
        phi = cos * cos_m - sin * sin_m
        if self.easy_margin:
            phi = torch.where(cos > 0, phi, cos)
        else:
            # Keep the target logit monotonic past theta + m > pi (as in ArcFace).
            th, mm = math.cos(math.pi - self.margin), math.sin(math.pi - self.margin) * self.margin
            phi = torch.where(cos > th, phi, cos - mm)
        one_hot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        logits = self.scale * (one_hot * phi + (1 - one_hot) * cos)
        return F.cross_entropy(logits, labels), logits


def margin_at(epoch: int, final: float, warmup_epochs: int, start_epoch: int = 0) -> float:
    """Linear margin warm-up: 0 before ``start_epoch``, ``final`` after ``start_epoch + warmup_epochs``."""
    if warmup_epochs <= 0:
        return final
    return final * min(1.0, max(0.0, (epoch - start_epoch + 1) / warmup_epochs))


def distillation(student: torch.Tensor, teacher: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """Pull student embeddings toward precomputed teacher embeddings (same dimension)."""
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    if kind == "mse":
        return F.mse_loss(F.normalize(student, dim=-1), F.normalize(teacher, dim=-1))
    raise ValueError(f"unknown distillation loss {kind!r}: use cosine or mse")


def build_head(kind: str, embed_dim: int, n_classes: int, **params) -> nn.Module:
    if kind == "softmax":
        return SoftmaxHead(embed_dim, n_classes)
    if kind == "aam":
        return AAMSoftmax(embed_dim, n_classes, **params)
    raise ValueError(f"unknown classification loss {kind!r}: use softmax or aam")
