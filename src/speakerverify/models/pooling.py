"""Attentive statistics pooling over valid frames (masks from :mod:`speakerverify.models.masking`)."""

from __future__ import annotations

import torch
from torch import nn


def weighted_mean_std(x: torch.Tensor, weights: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and standard deviation over time; ``weights`` sum to 1 over valid frames."""
    mean = (x * weights).sum(-1)
    var = (x.pow(2) * weights).sum(-1) - mean.pow(2)
    return mean, var.clamp(min=eps).sqrt()


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling with global context (ECAPA-style): (B, C, T) -> (B, 2C)."""

    def __init__(self, channels: int, attention: int = 128, global_context: bool = True) -> None:
        super().__init__()
        self.global_context = global_context
        inp = channels * 3 if global_context else channels
        self.attn = nn.Sequential(nn.Conv1d(inp, attention, 1), nn.ReLU(), nn.BatchNorm1d(attention), nn.Tanh(),
                                  nn.Conv1d(attention, channels, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.global_context:
            uniform = mask / mask.sum(-1, keepdim=True).clamp(min=1)
            mean, std = weighted_mean_std(x, uniform)
            t = x.shape[-1]
            h = torch.cat([x, mean.unsqueeze(-1).expand(-1, -1, t), std.unsqueeze(-1).expand(-1, -1, t)], dim=1)
        else:
            h = x
        logits = self.attn(h).masked_fill(mask == 0, float("-inf"))
        w = torch.softmax(logits, dim=-1)
        return torch.cat(weighted_mean_std(x, w), dim=1)
