"""Thin ResNet34 (as in the VoxCeleb ResNet baselines, e.g. WeSpeaker's ResNet34): 2-D residual
stages [3, 4, 6, 3] with widths base x [1, 2, 4, 8] over (frequency, time), statistics pooling
over time, and a linear embedding layer.

Stages 2-4 stride by 2 in frequency and time; valid frame counts follow (rounding up). Padded
frames are re-zeroed before every 3x3 conv and pooling ignores them, so a padded batch gives the
rows of single inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speakerverify.models import register
from speakerverify.models.masking import conv_frames, masked_mean_std, zero_padded


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` is zero in padded frames; so is the result."""
        n_out = conv_frames(n, 3, self.stride, 1)
        out = zero_padded(F.relu(self.bn1(self.conv1(x))), n_out)
        out = F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))
        return zero_padded(out, n_out), n_out


@register("resnet34-thin")
class ThinResNet34(nn.Module):
    """Thin ResNet34 over (B, T, F) features -> (B, embedding_dim)."""

    def __init__(self, input_dim: int = 80, base_width: int = 32, embedding_dim: int = 256,
                 layers: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.embedding_dim = embedding_dim
        self.conv1 = nn.Conv2d(1, base_width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        blocks: list[BasicBlock] = []
        in_planes = base_width
        freq = input_dim
        for stage, num in enumerate(layers):
            planes = base_width * 2 ** stage
            stride = 1 if stage == 0 else 2
            for i in range(num):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            if stride == 2:
                freq = (freq - 1) // 2 + 1
        self.blocks = nn.ModuleList(blocks)
        self.pool_dim = in_planes * freq * 2
        self.embedding = nn.Linear(self.pool_dim, embedding_dim)

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        x = zero_padded(feats.transpose(1, 2), num_frames).unsqueeze(1)  # (B, 1, F, T)
        x = zero_padded(F.relu(self.bn1(self.conv1(x))), num_frames)
        n = num_frames
        for block in self.blocks:
            x, n = block(x, n)
        x = x.reshape(x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        mean, std = masked_mean_std(x, n, eps=1e-10)
        return self.embedding(torch.cat([mean, std], dim=-1))
