"""``fastnet``: our CPU-efficient speaker-embedding network (the `fast` model's architecture).

Design: a strided input convolution halves the frame rate (50 frames/s), then depthwise-separable
residual TDNN blocks (depthwise dilated temporal conv + pointwise inverted bottleneck, like
ConvNeXt in 1-D) with squeeze-excitation, multi-layer feature aggregation, and attentive statistics
pooling. Most compute is in 1x1 convolutions, which are plain matrix products on a CPU.
All layers are masked so padded frames never influence valid ones.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from speakerverify.models import register
from speakerverify.models.masking import time_mask
from speakerverify.models.pooling import AttentiveStatsPool


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, bottleneck: int = 64) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, bottleneck), nn.ReLU(),
                                nn.Linear(bottleneck, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean = (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return x * self.fc(mean).unsqueeze(-1)


class DSBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, expand: int = 2) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.dw = nn.Conv1d(channels, channels, kernel, padding=pad, dilation=dilation, groups=channels, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.pw1 = nn.Conv1d(channels, channels * expand, 1)
        self.act = nn.ReLU()
        self.pw2 = nn.Conv1d(channels * expand, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.se = SqueezeExcite(channels)

    def fold_batchnorm(self) -> None:
        """See :mod:`speakerverify.models.inference`."""
        self.dw, self.bn1 = fuse_conv_bn_eval(self.dw, self.bn1), nn.Identity()
        self.pw2, self.bn2 = fuse_conv_bn_eval(self.pw2, self.bn2), nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.bn1(self.dw(x)) * mask
        h = self.bn2(self.pw2(self.act(self.pw1(h)))) * mask
        return torch.relu(x + self.se(h, mask)) * mask


@register("fastnet")
class FastNet(nn.Module):
    def __init__(self, input_dim: int = 80, channels: int = 256, dilations: tuple[int, ...] = (1, 2, 3, 4, 1, 2),
                 kernel: int = 5, expand: int = 2, mfa_channels: int = 768, attention: int = 128,
                 embed_dim: int = 192, stride: int = 2) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.embed_dim = embed_dim
        self.stride = stride
        self.stem = nn.Sequential(nn.Conv1d(input_dim, channels, 5, stride=stride, padding=2, bias=False),
                                  nn.BatchNorm1d(channels), nn.ReLU())
        self.blocks = nn.ModuleList(DSBlock(channels, kernel, d, expand) for d in dilations)
        self.n_mfa = min(3, len(dilations))
        self.mfa = nn.Sequential(nn.Conv1d(channels * self.n_mfa, mfa_channels, 1, bias=False),
                                 nn.BatchNorm1d(mfa_channels), nn.ReLU())
        self.pool = AttentiveStatsPool(mfa_channels, attention)
        self.head = nn.Sequential(nn.BatchNorm1d(2 * mfa_channels), nn.Linear(2 * mfa_channels, embed_dim),
                                  nn.BatchNorm1d(embed_dim))

    def fold_batchnorm(self) -> None:
        """Stem and MFA convs take in their BatchNorms (the blocks fold their own)."""
        for name in ("stem", "mfa"):
            conv, bn, act = getattr(self, name)
            setattr(self, name, nn.Sequential(fuse_conv_bn_eval(conv, bn), act))

    def out_frames(self, num_frames: torch.Tensor) -> torch.Tensor:
        return torch.div(num_frames - 1, self.stride, rounding_mode="floor") + 1

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        x = feats.transpose(1, 2)  # (B, F, T)
        if x.shape[-1] < 3:
            x = nn.functional.pad(x, (0, 3 - x.shape[-1]))
        num = self.out_frames(num_frames.clamp(min=1))
        x = self.stem(x)
        mask = time_mask(num, x.shape[-1])
        x = x * mask
        outs = []
        for block in self.blocks:
            x = block(x, mask)
            outs.append(x)
        x = self.mfa(torch.cat(outs[-self.n_mfa:], dim=1)) * mask
        return self.head(self.pool(x, mask))
