"""CAM++ (Wang et al. 2023, 3D-Speaker): a 2-D conv front module (FCM) followed by a densely
connected TDNN with context-aware masking (CAM), statistics pooling and a dense embedding layer.

Parameter names follow 3D-Speaker's ``speakerlab/models/campplus/DTDNN.py`` so its published
checkpoints load with ``load_state_dict`` unchanged. The network ends with BatchNorm (no affine,
no ReLU) as the published model does.

Inference: each block that has a convolution followed by BatchNorm folds the pair with
``fold_batchnorm()`` (see :mod:`speakerverify.models.inference`); the BatchNorms that follow a
concatenation or a ReLU stay.

Padding invariance: every frame-mixing operation (2-D and 1-D convs with temporal kernels, the
CAM context means, statistics pooling) sees zeros in padded frames, as zero padding would give
a single input; the stride-2 TDNN halves the valid frame counts (rounding up). When no row of a
batch is padded (a batch of one, say), the frame counts become ``None`` at the top and every layer
takes its unmasked path: no mask is built and no padding is checked layer by layer, which on a 1-s
clip is several percent of the network's time.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from speakerverify.models import register
from speakerverify.models.masking import conv_frames, masked_mean_std, unpadded, zero_padded


class BasicResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                                          nn.BatchNorm2d(planes))

    def fold_batchnorm(self) -> None:
        self.conv1, self.bn1 = fuse_conv_bn_eval(self.conv1, self.bn1), nn.Identity()
        self.conv2, self.bn2 = fuse_conv_bn_eval(self.conv2, self.bn2), nn.Identity()
        if len(self.shortcut):
            self.shortcut = nn.Sequential(fuse_conv_bn_eval(self.shortcut[0], self.shortcut[1]))

    def forward(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        out = zero_padded(F.relu(self.bn1(self.conv1(x)), inplace=True), n)
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return zero_padded(F.relu(out, inplace=True), n)


class FCM(nn.Module):
    """Front-end convolution module: (B, F, T) -> (B, C * F / 8, T).

    Its activations are 2-D (channels x frequency x time): 32 x 80 x T floats, 600 MB for a
    10-minute recording, several of them alive at once. An unpadded input longer than ``chunk``
    frames is therefore run in chunks of ``chunk`` frames, each with ``halo`` frames of context on
    both sides, and the chunks' middles concatenated: every layer is a convolution over time with
    zero padding (stride 1 in time), so a frame's output depends on the ``halo`` frames around it
    only, and the result equals the whole-input one (``tests/test_model_padding.py``). Exported and
    traced graphs keep the whole-input path.
    """

    def __init__(self, feat_dim: int = 80, m_channels: int = 32, num_blocks: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.ModuleList([BasicResBlock(m_channels, m_channels, 2)]
                                    + [BasicResBlock(m_channels, m_channels) for _ in range(num_blocks[0] - 1)])
        self.layer2 = nn.ModuleList([BasicResBlock(m_channels, m_channels, 2)]
                                    + [BasicResBlock(m_channels, m_channels) for _ in range(num_blocks[1] - 1)])
        self.conv2 = nn.Conv2d(m_channels, m_channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        freq = feat_dim
        for _ in range(3):
            freq = (freq - 1) // 2 + 1
        self.out_channels = m_channels * freq
        self.chunk = 3000  # frames (30 s): about 30 MB per activation, under 1 % of extra work
        # Frames of context one output frame depends on, each side: conv1, the two convs of every
        # residual block, conv2; every time kernel is 3 wide with stride 1 in time.
        self.halo = 1 + 2 * sum(num_blocks) + 1

    def fold_batchnorm(self) -> None:
        self.conv1, self.bn1 = fuse_conv_bn_eval(self.conv1, self.bn1), nn.Identity()
        self.conv2, self.bn2 = fuse_conv_bn_eval(self.conv2, self.bn2), nn.Identity()

    def forward(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        t = x.shape[-1]
        if t <= self.chunk + 2 * self.halo or self.training or not (n is None or unpadded(x, n)):
            return self._forward(x, n)
        parts = []
        for start in range(0, t, self.chunk):
            lo, hi = max(0, start - self.halo), min(t, start + self.chunk + self.halo)
            out = self._forward(x[..., lo:hi], None)
            parts.append(out[..., start - lo:start - lo + min(self.chunk, t - start)])
        return torch.cat(parts, dim=-1)

    def _forward(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        out = zero_padded(F.relu(self.bn1(self.conv1(x.unsqueeze(1))), inplace=True), n)
        for block in [*self.layer1, *self.layer2]:
            out = block(out, n)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class BNReLU(nn.Sequential):
    def __init__(self, channels: int) -> None:
        # In place, as in 3D-Speaker: the ReLU's input is always a fresh tensor (BatchNorm's output,
        # or a convolution's where BatchNorm was folded into it).
        super().__init__(OrderedDict(batchnorm=nn.BatchNorm1d(channels), relu=nn.ReLU(inplace=True)))


class TDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.padding = (kernel_size - 1) // 2 * dilation
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=self.padding,
                                dilation=dilation, bias=False)
        self.nonlinear = BNReLU(out_channels)

    def out_frames(self, n: torch.Tensor | None) -> torch.Tensor | None:
        return None if n is None else conv_frames(n, self.kernel_size, self.stride, self.padding, self.dilation)

    def fold_batchnorm(self) -> None:
        self.linear = fuse_conv_bn_eval(self.linear, self.nonlinear.batchnorm)
        self.nonlinear.batchnorm = nn.Identity()

    def forward(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        return self.nonlinear(self.linear(zero_padded(x, n)))


class CAMLayer(nn.Module):
    """Context-aware masking: a local TDNN output gated by utterance- and segment-level context."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int,
                 reduction: int = 2, seg_len: int = 100) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                                      bias=False)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.seg_len = seg_len

    def forward(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        """``x`` must be zero in padded frames."""
        y = self.linear_local(x)
        if n is None:
            context = x.mean(-1, keepdim=True) + self.seg_pooling(x, n)
        else:
            context = x.sum(-1, keepdim=True) / n.clamp(min=1).to(x.dtype).view(-1, 1, 1) + self.seg_pooling(x, n)
        return y * torch.sigmoid(self.linear2(F.relu(self.linear1(context))))

    def seg_pooling(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        """Mean over consecutive ``seg_len``-frame segments (the last one partial), spread back
        over its frames; like ``avg_pool1d(..., ceil_mode=True)`` on each unpadded row."""
        b, c, t = x.shape
        if n is None or unpadded(x, n):  # no row ends early: the pooling itself is exact (and much cheaper)
            means = F.avg_pool1d(x, self.seg_len, self.seg_len, ceil_mode=True)
            return means.unsqueeze(-1).expand(*means.shape, self.seg_len).reshape(b, c, -1)[..., :t]
        # Segment sums as differences of a (float64) running sum, gathered per frame: no reshape
        # of the time axis into segments, so the graph exports with a dynamic length.
        csum = F.pad(torch.cumsum(x.double(), dim=-1), (1, 0))  # (B, C, T + 1)
        frame = torch.arange(t, device=x.device).unsqueeze(0)  # (1, T)
        start = torch.div(frame, self.seg_len, rounding_mode="floor") * self.seg_len
        end = torch.minimum(start + self.seg_len, n.unsqueeze(1).clamp(min=1))
        end = torch.maximum(end, start + 1)  # frames past the end (masked later) still divide by >= 1
        start, end = start.expand(b, t), torch.minimum(end, torch.full_like(end, t))
        sums = (torch.gather(csum, 2, end.unsqueeze(1).expand(b, c, t))
                - torch.gather(csum, 2, start.unsqueeze(1).expand(b, c, t)))
        return (sums / (end - start).unsqueeze(1).double()).to(x.dtype)


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bn_channels: int, kernel_size: int,
                 dilation: int = 1) -> None:
        super().__init__()
        self.nonlinear1 = BNReLU(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = BNReLU(bn_channels)
        self.cam_layer = CAMLayer(bn_channels, out_channels, kernel_size, dilation)

    def fold_batchnorm(self) -> None:
        self.linear1 = fuse_conv_bn_eval(self.linear1, self.nonlinear2.batchnorm)
        self.nonlinear2.batchnorm = nn.Identity()

    def forward(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        h = zero_padded(self.nonlinear2(self.linear1(self.nonlinear1(x))), n)
        return self.cam_layer(h, n)


class CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, num_layers: int, in_channels: int, out_channels: int, bn_channels: int,
                 kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"tdnnd{i + 1}", CAMDenseTDNNLayer(in_channels + i * out_channels, out_channels,
                                                               bn_channels, kernel_size, dilation))

    def forward(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = torch.cat([x, layer(x, n)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = BNReLU(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class DenseLayer(nn.Module):
    """1x1 conv + BatchNorm without affine parameters (the published model has no ReLU here)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(out_channels, affine=False)))

    def fold_batchnorm(self) -> None:
        self.linear = fuse_conv_bn_eval(self.linear, self.nonlinear.batchnorm)
        self.nonlinear.batchnorm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class XVector(nn.Module):
    """The TDNN trunk; a module (not nn.Sequential) so it can carry frame counts."""

    def __init__(self, channels: int, init_channels: int, growth_rate: int, bn_size: int,
                 blocks: tuple[tuple[int, int, int], ...], embedding_dim: int) -> None:
        super().__init__()
        self.tdnn = TDNNLayer(channels, init_channels, 5, stride=2)
        channels = init_channels
        self.num_blocks = len(blocks)
        for i, (num_layers, kernel_size, dilation) in enumerate(blocks):
            self.add_module(f"block{i + 1}", CAMDenseTDNNBlock(num_layers, channels, growth_rate,
                                                               bn_size * growth_rate, kernel_size, dilation))
            channels += num_layers * growth_rate
            self.add_module(f"transit{i + 1}", TransitLayer(channels, channels // 2))
            channels //= 2
        self.out_nonlinear = BNReLU(channels)
        self.dense = DenseLayer(channels * 2, embedding_dim)

    def forward(self, x: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        x = self.tdnn(x, n)
        n = self.tdnn.out_frames(n)
        for i in range(1, self.num_blocks + 1):
            x = getattr(self, f"block{i}")(zero_padded(x, n), n)
            x = getattr(self, f"transit{i}")(x)
        x = self.out_nonlinear(x)
        mean, std = masked_mean_std(x, n, unbiased=True)
        # 3D-Speaker's StatsPool uses eps as the std of a single frame.
        if n is not None:
            std = torch.where(n.view(-1, 1) > 1, std, torch.full_like(std, 1e-2))
        elif x.shape[-1] <= 1:
            std = torch.full_like(std, 1e-2)
        return self.dense(torch.cat([mean, std], dim=-1))


@register("campplus")
class CAMPPlus(nn.Module):
    """CAM++ over (B, T, F) features -> (B, embedding_dim)."""

    def __init__(self, input_dim: int = 80, embedding_dim: int = 192, growth_rate: int = 32, bn_size: int = 4,
                 init_channels: int = 128, m_channels: int = 32,
                 blocks: tuple[tuple[int, int, int], ...] = ((12, 3, 1), (24, 3, 2), (16, 3, 2))) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.embedding_dim = embedding_dim
        self.head = FCM(input_dim, m_channels)
        self.xvector = XVector(self.head.out_channels, init_channels, growth_rate, bn_size,
                               tuple(tuple(b) for b in blocks), embedding_dim)

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        x = feats.transpose(1, 2)  # (B, F, T)
        n = None if unpadded(x, num_frames) else num_frames  # checked once here, not in every layer
        return self.xvector(self.head(zero_padded(x, n), n), n)
