"""What every front end shares: batch handling, masks of valid frames, mean normalisation.

Front ends map waveform batches (B, N) at 16 kHz to feature batches (B, T, F) in torch. They take
``lengths`` (valid samples per row) so padded batches give the same features as single
utterances, and return the number of valid frames per row; padded frames are zero.
"""

from __future__ import annotations

import torch

SAMPLE_RATE = 16000


def frames_mask(num_frames: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Boolean (B, T) mask of valid frames."""
    return torch.arange(max_frames, device=num_frames.device).unsqueeze(0) < num_frames.unsqueeze(1)


def as_batch(wave: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A (N,) waveform becomes a batch of one; missing ``lengths`` mean every row is whole."""
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    if lengths is None:
        lengths = torch.full((wave.shape[0],), wave.shape[1], dtype=torch.long, device=wave.device)
    return wave, lengths


def mean_normalize(feats: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    """Subtract each utterance's mean over its valid frames; padded frames become zero."""
    mask = frames_mask(num_frames, feats.shape[1]).unsqueeze(-1).to(feats.dtype)
    mean = (feats * mask).sum(1, keepdim=True) / num_frames.clamp(min=1).view(-1, 1, 1).to(feats.dtype)
    return (feats - mean) * mask
