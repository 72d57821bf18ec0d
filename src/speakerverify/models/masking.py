"""Helpers that keep padded frames from leaking into valid ones (shared by the conv models).

Every model here works on (B, C, T) or (B, C, F, T) tensors plus ``num_frames`` (B,). The rule:
before any operation that mixes frames (a conv with a temporal kernel, a mean over time) the
padded frames must look exactly as they would for a single, unpadded input -- zeros for zero-padded
convs, reflected frames for reflect-padded ones -- and pooling must ignore them. A model that has
found no padded row in its input may pass ``num_frames=None`` on to :func:`zero_padded` and
:func:`masked_mean_std`, which then skip their masks.
"""

from __future__ import annotations

import torch


def time_mask(num_frames: torch.Tensor, max_frames: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, 1, T) float mask of valid frames (broadcasts over channels)."""
    steps = torch.arange(max_frames, device=num_frames.device)
    return (steps.unsqueeze(0) < num_frames.unsqueeze(1)).unsqueeze(1).to(dtype)


def unpadded(x: torch.Tensor, num_frames: torch.Tensor) -> bool:
    """True when no row of ``x`` has padded frames, so masking is a no-op and may be skipped.

    Checked only in eager mode: an exported or traced graph must keep its masks, since it will
    serve padded batches whatever the example it was traced with.
    """
    if torch.compiler.is_exporting() or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if not num_frames.is_cpu:  # reading a device tensor's value waits for the device, once per layer
        return False
    return bool((num_frames >= x.shape[-1]).all())


def zero_padded(x: torch.Tensor, num_frames: torch.Tensor | None) -> torch.Tensor:
    """Zero every frame past ``num_frames`` (time is the last axis, any rank >= 3); ``None``: no
    row is padded."""
    if num_frames is None or unpadded(x, num_frames):  # a batch of one, say: nothing to zero
        return x
    mask = time_mask(num_frames, x.shape[-1], x.dtype)
    if x.dim() == 4:
        mask = mask.unsqueeze(1)
    return x * mask


def masked_mean_std(x: torch.Tensor, num_frames: torch.Tensor | None, unbiased: bool = False,
                    eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the valid frames of (B, C, T): two (B, C) tensors;
    ``num_frames`` None: every frame is valid."""
    if num_frames is None:
        var, mean = torch.var_mean(x, dim=-1, correction=int(unbiased and x.shape[-1] > 1))
        return mean, torch.sqrt(var.clamp(min=eps)) if eps > 0 else torch.sqrt(var)
    mask = time_mask(num_frames, x.shape[-1], x.dtype)
    n = num_frames.to(x.dtype).clamp(min=1).view(-1, 1)
    mean = (x * mask).sum(-1) / n
    denom = (n - 1).clamp(min=1) if unbiased else n
    var = (((x - mean.unsqueeze(-1)) * mask).pow(2)).sum(-1) / denom
    return mean, torch.sqrt(var.clamp(min=eps)) if eps > 0 else torch.sqrt(var)


def reflect_pad(x: torch.Tensor, num_frames: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad each row of (B, C, T) by ``pad`` frames at its own end: (B, C, T + 2 pad).

    Row b is padded as ``F.pad(x[b, :, :n_b], (pad, pad), mode="reflect")`` would pad it alone,
    followed by filler frames; frames are reflected repeatedly when ``pad >= n_b``, so very short
    inputs still work (where torch's reflect padding refuses them).
    """
    if pad == 0:
        return x
    total = x.shape[-1] + 2 * pad
    pos = torch.arange(total, device=x.device).unsqueeze(0) - pad  # (1, T + 2 pad)
    n = num_frames.clamp(min=1).unsqueeze(1)
    period = (2 * (n - 1)).clamp(min=1)
    m = torch.remainder(pos, period)
    idx = torch.where(m < n, m, period - m)
    idx = torch.minimum(idx, n - 1)
    return torch.gather(x, 2, idx.unsqueeze(1).expand(x.shape[0], x.shape[1], total))


def conv_frames(num_frames: torch.Tensor, kernel: int, stride: int, padding: int, dilation: int = 1
                ) -> torch.Tensor:
    """Valid output frames of a conv over ``num_frames`` valid input frames."""
    return torch.div(num_frames + 2 * padding - dilation * (kernel - 1) - 1, stride,
                     rounding_mode="floor") + 1
