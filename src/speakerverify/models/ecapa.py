"""ECAPA-TDNN (Desplanques et al. 2020): SE-Res2Blocks, multi-layer feature aggregation,
attentive statistics pooling.

Laid out like SpeechBrain's ``ECAPA_TDNN`` (``speechbrain.lobes.models.ECAPA_TDNN``) so its
published checkpoints map onto it by dropping SpeechBrain's wrapper level in parameter names
(``blocks.0.conv.conv.weight`` -> ``blocks.0.conv.weight``; see :mod:`speakerverify.importers`).
SpeechBrain pads its temporal convs by reflection ("same" padding); ``padding="reflect"``
reproduces that per utterance, so a padded batch gives the rows of single inputs. ``"zeros"`` is
the cheaper choice for models trained here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speakerverify.models import register
from speakerverify.models.masking import masked_mean_std, reflect_pad, time_mask, zero_padded


class TDNNBlock(nn.Module):
    """Conv1d -> ReLU -> BatchNorm, 'same' length output (SpeechBrain order)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1,
                 padding: str = "reflect") -> None:
        super().__init__()
        self.pad = dilation * (kernel_size - 1) // 2
        self.reflect = padding == "reflect"
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation,
                              padding=0 if self.reflect else self.pad)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = reflect_pad(x, num_frames, self.pad) if self.reflect else zero_padded(x, num_frames)
        return self.norm(F.relu(self.conv(x)))


class Res2NetBlock(nn.Module):
    def __init__(self, channels: int, scale: int, kernel_size: int, dilation: int, padding: str) -> None:
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by res2net scale {scale}")
        width = channels // scale
        self.scale = scale
        self.blocks = nn.ModuleList(TDNNBlock(width, width, kernel_size, dilation, padding)
                                    for _ in range(scale - 1))

    def forward(self, x: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        chunks = torch.chunk(x, self.scale, dim=1)
        out = [chunks[0]]
        y = chunks[0]
        for i, block in enumerate(self.blocks):
            y = block(chunks[i + 1] if i == 0 else chunks[i + 1] + y, num_frames)
            out.append(y)
        return torch.cat(out, dim=1)


class SEBlock(nn.Module):
    def __init__(self, channels: int, se_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, se_channels, 1)
        self.conv2 = nn.Conv1d(se_channels, channels, 1)

    def forward(self, x: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        mask = time_mask(num_frames, x.shape[-1], x.dtype)
        s = (x * mask).sum(-1, keepdim=True) / num_frames.clamp(min=1).to(x.dtype).view(-1, 1, 1)
        s = torch.sigmoid(self.conv2(F.relu(self.conv1(s))))
        return s * x


class SERes2NetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, scale: int, se_channels: int,
                 kernel_size: int, dilation: int, padding: str) -> None:
        super().__init__()
        self.tdnn1 = TDNNBlock(in_channels, out_channels, 1)
        self.res2net_block = Res2NetBlock(out_channels, scale, kernel_size, dilation, padding)
        self.tdnn2 = TDNNBlock(out_channels, out_channels, 1)
        self.se_block = SEBlock(out_channels, se_channels)
        self.shortcut = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut(x) if self.shortcut is not None else x
        x = self.tdnn1(x, num_frames)
        x = self.res2net_block(x, num_frames)
        x = self.tdnn2(x, num_frames)
        x = self.se_block(x, num_frames)
        return x + residual


class AttentiveStatisticsPooling(nn.Module):
    """Channel- and context-dependent attentive mean and std over the valid frames -> (B, 2C)."""

    def __init__(self, channels: int, attention_channels: int = 128, global_context: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.global_context = global_context
        self.tdnn = TDNNBlock(channels * 3 if global_context else channels, attention_channels, 1)
        self.conv = nn.Conv1d(attention_channels, channels, 1)
        self.eps = 1e-12

    def forward(self, x: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        mask = time_mask(num_frames, x.shape[-1], x.dtype)
        if self.global_context:
            mean, std = masked_mean_std(x, num_frames, eps=self.eps)
            # conv([x; mean; std]) with mean and std constant over time, without tiling them.
            w = self.tdnn.conv.weight
            c = self.channels
            h = F.conv1d(x, w[:, :c])
            ctx = torch.matmul(w[:, c:2 * c, 0], mean.unsqueeze(-1)) + torch.matmul(w[:, 2 * c:, 0], std.unsqueeze(-1))
            h = h + ctx + self.tdnn.conv.bias.view(1, -1, 1)
            h = self.tdnn.norm(F.relu(h))
        else:
            h = self.tdnn(x, num_frames)
        attn = self.conv(torch.tanh(h))
        attn = attn.masked_fill(mask == 0, float("-inf"))
        attn = F.softmax(attn, dim=2)
        mean = (attn * x).sum(-1)
        var = (attn * (x - mean.unsqueeze(-1)).pow(2)).sum(-1)
        return torch.cat([mean, torch.sqrt(var.clamp(min=self.eps))], dim=1)


@register("ecapa-tdnn")
class EcapaTdnn(nn.Module):
    """ECAPA-TDNN over (B, T, F) features -> (B, embedding_dim).

    ``channels`` is C of the three SE-Res2Blocks (512 or 1024 in the paper); the aggregation layer
    has ``mfa_channels`` (default 3 C).
    """

    def __init__(self, input_dim: int = 80, channels: int = 512, embedding_dim: int = 192,
                 mfa_channels: int | None = None, attention_channels: int = 128, se_channels: int = 128,
                 res2net_scale: int = 8, kernel_sizes: tuple[int, ...] = (5, 3, 3, 3),
                 dilations: tuple[int, ...] = (1, 2, 3, 4), global_context: bool = True,
                 padding: str = "reflect") -> None:
        super().__init__()
        if padding not in ("reflect", "zeros"):
            raise ValueError(f"padding must be reflect or zeros, not {padding!r}")
        if len(kernel_sizes) != len(dilations) or len(kernel_sizes) < 2:
            raise ValueError("kernel_sizes and dilations need the same length (at least 2)")
        self.input_dim = input_dim
        self.embedding_dim = embedding_dim
        mfa_channels = mfa_channels or 3 * channels
        self.blocks = nn.ModuleList([TDNNBlock(input_dim, channels, kernel_sizes[0], dilations[0], padding)])
        for k, d in zip(kernel_sizes[1:], dilations[1:], strict=True):
            self.blocks.append(SERes2NetBlock(channels, channels, res2net_scale, se_channels, k, d, padding))
        self.mfa = TDNNBlock(channels * (len(kernel_sizes) - 1), mfa_channels, 1)
        self.asp = AttentiveStatisticsPooling(mfa_channels, attention_channels, global_context)
        self.asp_bn = nn.BatchNorm1d(mfa_channels * 2)
        self.fc = nn.Conv1d(mfa_channels * 2, embedding_dim, 1)

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        x = feats.transpose(1, 2)
        outs = []
        for block in self.blocks:
            x = zero_padded(block(x, num_frames), num_frames)
            outs.append(x)
        x = zero_padded(self.mfa(torch.cat(outs[1:], dim=1), num_frames), num_frames)
        x = self.asp(x, num_frames)
        x = self.asp_bn(x.unsqueeze(-1))
        return self.fc(x).squeeze(-1)
