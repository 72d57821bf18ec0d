"""Siamese pair models over the seed STFT front end (513 bins, 32 frames per second).

* ``siamese-gru-seed`` -- the seed notebook's network: two GRU(128) branches that do not share
  weights, cosine similarity (Keras ``Dot(normalize=True)``), ``Dense(1, sigmoid)``. Weights start
  as Keras starts them (Glorot-uniform input kernels, orthogonal recurrent kernels, zero biases),
  and PyTorch's GRU computes the reset gate after the recurrent product as Keras' default
  ``reset_after=True`` does.
* ``siamese-gru`` -- the same with one branch shared by both inputs.
* ``siamese-cnn`` -- a small shared 2-D CNN branch over log(1 + |STFT|) averaged in groups of 8
  bins (65 bands), with masked global pooling; same head.

Every model embeds with ``forward`` (``forward_second`` embeds the test side of the two-branch
model), ``logit(ea, eb)`` is the head's pre-sigmoid output and ``score(ea, eb)`` its sigmoid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from speakerverify.features import frames_mask
from speakerverify.models import register

SEED_STFT_DIM = 513


class SimilarityHead(nn.Module):
    """sigmoid(w * cos(ea, eb) + b): Keras ``Dot(normalize=True)`` then ``Dense(1, sigmoid)``.

    Keras draws w from U(-sqrt(3), sqrt(3)), so half of all initialisations start by calling
    similar inputs *different*. Two unshared branches can learn around that; one shared branch
    cannot (a pair of identical inputs always has cosine 1), so shared models start with |w|.
    """

    def __init__(self, positive: bool = False) -> None:
        super().__init__()
        self.dense = nn.Linear(1, 1)
        limit = math.sqrt(6.0 / 2.0)
        nn.init.uniform_(self.dense.weight, -limit, limit)
        nn.init.zeros_(self.dense.bias)
        if positive:
            with torch.no_grad():
                self.dense.weight.abs_()

    def forward(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        cos = (F.normalize(ea, dim=-1, eps=1e-12) * F.normalize(eb, dim=-1, eps=1e-12)).sum(-1)
        return self.dense(cos.unsqueeze(-1)).squeeze(-1)


class GruBranch(nn.Module):
    """One GRU layer; the embedding is the hidden state after each row's last valid frame."""

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_dim, hidden, batch_first=True)
        self._keras_init(input_dim, hidden)

    def _keras_init(self, input_dim: int, hidden: int) -> None:
        limit = math.sqrt(6.0 / (input_dim + 3 * hidden))
        nn.init.uniform_(self.gru.weight_ih_l0, -limit, limit)
        nn.init.orthogonal_(self.gru.weight_hh_l0)
        nn.init.zeros_(self.gru.bias_ih_l0)
        nn.init.zeros_(self.gru.bias_hh_l0)

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        lengths = num_frames.clamp(min=1, max=feats.shape[1])
        if _tracing():
            # Packed sequences cannot be exported; a causal GRU's output at each row's last valid
            # frame is the same state, so gather it from the padded run instead.
            out, _ = self.gru(feats)
            index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
            return out.gather(1, index).squeeze(1)
        packed = pack_padded_sequence(feats, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return h[-1]


def _tracing() -> bool:
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling() or torch.jit.is_tracing()


class _PairModel(nn.Module):
    def __init__(self, positive_head: bool = False) -> None:
        super().__init__()
        self.head = SimilarityHead(positive_head)

    def logit(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        return self.head(ea, eb)

    def score(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(ea, eb))


@register("siamese-gru-seed")
class SiameseGruSeed(_PairModel):
    """The notebook's network: two unshared GRU branches (enrollment side, test side)."""

    def __init__(self, input_dim: int = SEED_STFT_DIM, hidden: int = 128) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.branch1 = GruBranch(input_dim, hidden)
        self.branch2 = GruBranch(input_dim, hidden)

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        return self.branch1(feats, num_frames)

    def forward_second(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        return self.branch2(feats, num_frames)


@register("siamese-gru")
class SiameseGru(_PairModel):
    """One GRU branch shared by both inputs."""

    def __init__(self, input_dim: int = SEED_STFT_DIM, hidden: int = 128) -> None:
        super().__init__(positive_head=True)
        self.input_dim = input_dim
        self.branch = GruBranch(input_dim, hidden)

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        return self.branch(feats, num_frames)


class _ConvBlock(nn.Module):
    """conv3x3 -> batch norm -> ReLU -> 2x2 max pool (ceil mode) over (frequency, time)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn(self.conv(x))) * _time_mask(frames, x.shape[-1])
        return F.max_pool2d(x, 2, ceil_mode=True), (frames + 1) // 2


def _time_mask(frames: torch.Tensor, width: int) -> torch.Tensor:
    return frames_mask(frames, width)[:, None, None, :].float()


class CnnBranch(nn.Module):
    """Conv blocks over (frequency, time), then masked average pooling and a linear layer.

    Padded frames are zeroed after every activation, so they never reach a valid frame through a
    convolution and (activations being non-negative) never win a max pool.
    """

    def __init__(self, channels: tuple[int, ...], embed_dim: int, log_input: bool,
                 freq_pool: int) -> None:
        super().__init__()
        self.log_input = log_input
        self.freq_pool = freq_pool
        self.input_norm = nn.BatchNorm2d(1)
        self.blocks = nn.ModuleList(
            _ConvBlock(c_in, c_out) for c_in, c_out in zip((1, *channels[:-1]), channels, strict=True))
        self.proj = nn.Linear(channels[-1], embed_dim)

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        x = torch.log1p(feats) if self.log_input else feats
        frames = num_frames.clamp(min=1, max=feats.shape[1])
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        if self.freq_pool > 1:
            x = F.avg_pool2d(x, (self.freq_pool, 1), ceil_mode=True)
        x = self.input_norm(x) * _time_mask(frames, x.shape[-1])
        for block in self.blocks:
            x, frames = block(x, frames)
        pooled = x.mean(2).sum(-1) / frames.unsqueeze(1).to(x.dtype)
        return self.proj(pooled)


@register("siamese-cnn")
class SiameseCnn(_PairModel):
    """A small shared CNN branch (conv blocks, masked global average pooling, linear to 128)."""

    def __init__(self, input_dim: int = SEED_STFT_DIM, channels: tuple[int, ...] | list[int] = (16, 32, 64),
                 embed_dim: int = 128, log_input: bool = True, freq_pool: int = 8) -> None:
        super().__init__(positive_head=True)
        self.input_dim = input_dim
        self.branch = CnnBranch(tuple(channels), embed_dim, log_input, freq_pool)

    def forward(self, feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        return self.branch(feats, num_frames)
