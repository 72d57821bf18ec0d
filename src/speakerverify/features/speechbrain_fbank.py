"""Front ends that reproduce other toolkits' features, so their published models run here.

* :class:`SpeechBrainFbank` (``speechbrain-fbank``) -- SpeechBrain's ``lobes.features.Fbank``
  followed by sentence mean normalisation (``InputNormalization(norm_type="sentence",
  std_norm=False)``), the front end of ``speechbrain/spkrec-ecapa-voxceleb``: centred STFT
  (n_fft 400, hop 160, periodic Hamming window, zero padding), power spectrum, 80 triangular
  filters spaced on the HTK mel scale from 0 to 8000 Hz (SpeechBrain's own filter shapes),
  10 log10 with a floor of 1e-10, values clipped at 80 dB below the utterance's maximum.

Like every front end (:mod:`speakerverify.features.common`), it takes ``lengths`` so a padded
batch gives each row's single-utterance features; padded frames are zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from speakerverify.features.common import SAMPLE_RATE, as_batch, frames_mask, mean_normalize


def speechbrain_mel_filters(num_bins: int, n_fft: int, sample_rate: int, f_min: float, f_max: float
                            ) -> torch.Tensor:
    """SpeechBrain's triangular filters (``Filterbank``), shape (n_fft // 2 + 1, num_bins).

    Computed in float32 the way SpeechBrain computes them, so the features match to rounding.
    """

    def to_mel(hz: float) -> float:
        return 2595 * math.log10(1 + hz / 700)

    mel = torch.linspace(to_mel(f_min), to_mel(f_max), num_bins + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    band = (hz[1:] - hz[:-1])[:-1].unsqueeze(1)
    central = hz[1:-1].unsqueeze(1)
    freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1).unsqueeze(0)
    slope = (freqs - central) / band
    return torch.clamp(torch.minimum(slope + 1.0, 1.0 - slope), min=0.0).t().contiguous()


class SpeechBrainFbank(nn.Module):
    def __init__(self, num_mel_bins: int = 80, n_fft: int = 400, hop: int = 160, f_min: float = 0.0,
                 f_max: float | None = None, top_db: float | None = 80.0, amin: float = 1e-10,
                 mean_norm: bool = True, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.num_mel_bins = num_mel_bins
        self.top_db = top_db
        self.amin = amin
        self.mean_norm = mean_norm
        f_max = float(sample_rate // 2) if f_max is None else f_max
        self.register_buffer("window", torch.hamming_window(n_fft), persistent=False)
        self.register_buffer("mel", speechbrain_mel_filters(num_mel_bins, n_fft, sample_rate, f_min, f_max),
                             persistent=False)

    @property
    def dim(self) -> int:
        return self.num_mel_bins

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths, self.hop, rounding_mode="floor") + 1

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        wave, lengths = as_batch(wave, lengths)
        wave = wave.float() * frames_mask(lengths, wave.shape[1]).float()
        half = self.n_fft // 2
        frames = F.pad(wave, (half, half)).unfold(1, self.n_fft, self.hop)  # centred frames (B, T, n_fft)
        spec = torch.fft.rfft(frames * self.window)
        power = spec.real.pow(2) + spec.imag.pow(2)
        db = 10.0 * torch.log10(torch.clamp(torch.matmul(power, self.mel), min=self.amin))
        num_frames = self.num_frames(lengths)
        valid = frames_mask(num_frames, db.shape[1]).unsqueeze(-1)
        if self.top_db is not None:
            peak = db.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
            db = torch.maximum(db, peak - self.top_db)
        if self.mean_norm:
            return mean_normalize(db, num_frames), num_frames
        return db * valid, num_frames

