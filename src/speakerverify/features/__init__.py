"""Front ends: waveform batches (B, N) at 16 kHz -> feature batches (B, T, F), in torch.

One module per front end, registered here by explicit import (add a front end: write its module,
add one line to ``FRONTENDS``):

* ``kaldi-fbank`` -- :class:`~speakerverify.features.kaldi_fbank.KaldiFbank`;
* ``seed-stft`` -- :class:`~speakerverify.features.seed_stft.SeedStft`, the seed notebook's |STFT|;
* ``speechbrain-fbank`` -- :class:`~speakerverify.features.speechbrain_fbank.SpeechBrainFbank`, for
  SpeechBrain's published models;
* ``stacked`` -- :class:`~speakerverify.features.stacked.StackedFrontend`, several member front ends
  side by side (for :class:`~speakerverify.models.fusion.Fusion`).

Shared helpers (masks, batching, mean normalisation) are in :mod:`speakerverify.features.common`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from speakerverify.features.common import SAMPLE_RATE, as_batch, frames_mask, mean_normalize
from speakerverify.features.kaldi_fbank import KaldiFbank, kaldi_mel_banks
from speakerverify.features.seed_stft import SeedStft
from speakerverify.features.speechbrain_fbank import SpeechBrainFbank
from speakerverify.features.stacked import StackedFrontend

FRONTENDS: dict[str, type[nn.Module]] = {
    "kaldi-fbank": KaldiFbank,
    "seed-stft": SeedStft,
    "speechbrain-fbank": SpeechBrainFbank,
    "stacked": StackedFrontend,
}

__all__ = ["FRONTENDS", "SAMPLE_RATE", "KaldiFbank", "SeedStft", "SpeechBrainFbank", "StackedFrontend", "as_batch",
           "build_frontend", "frames_mask", "kaldi_mel_banks", "mean_normalize"]


def build_frontend(config: dict[str, Any] | None) -> nn.Module:
    """Build a front end from ``{"type": name, **params}`` (default: 80-bin Kaldi fbank)."""
    config = dict(config or {"type": "kaldi-fbank"})
    kind = config.pop("type", "kaldi-fbank")
    if kind not in FRONTENDS:
        raise ValueError(f"unknown front end {kind!r}; known: {', '.join(sorted(FRONTENDS))}")
    if kind == "stacked":  # a composite: its members are front-end configs too
        return StackedFrontend([build_frontend(m) for m in config.pop("members", [])], **config)
    return FRONTENDS[kind](**config)
