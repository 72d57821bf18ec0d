"""``kaldi-fbank``: 80-bin log-mel filterbank with Kaldi's conventions (25 ms povey window,
10 ms hop, pre-emphasis 0.97, DC removal, no dither, snip_edges), optionally mean-normalised per
utterance. Written here rather than taken from torchaudio, which has no build for our torch; tests
check it against kaldi-native-fbank.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from speakerverify.features.common import SAMPLE_RATE, as_batch, frames_mask, mean_normalize


def _mel(freq: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_banks(num_bins: int, n_fft: int, sample_rate: int, low_freq: float = 20.0,
                    high_freq: float = 0.0) -> torch.Tensor:
    """Triangular mel filters as Kaldi builds them, shape (num_bins, n_fft // 2 + 1)."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq = nyquist + high_freq
    num_fft_bins = n_fft // 2
    bin_width = sample_rate / n_fft
    mel_low = _mel(torch.tensor(low_freq, dtype=torch.float64))
    mel_high = _mel(torch.tensor(high_freq, dtype=torch.float64))
    delta = (mel_high - mel_low) / (num_bins + 1)
    idx = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left = mel_low + idx * delta
    center = left + delta
    right = center + delta
    mels = _mel(bin_width * torch.arange(num_fft_bins, dtype=torch.float64)).unsqueeze(0)
    up = (mels - left) / (center - left)
    down = (right - mels) / (right - center)
    weights = torch.clamp(torch.minimum(up, down), min=0.0)
    weights = torch.cat([weights, torch.zeros(num_bins, 1, dtype=torch.float64)], dim=1)
    return weights.float()


class KaldiFbank(nn.Module):
    def __init__(self, num_mel_bins: int = 80, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0, preemphasis: float = 0.97, low_freq: float = 20.0,
                 high_freq: float = 0.0, mean_norm: bool = True, sample_rate: int = SAMPLE_RATE,
                 waveform_scale: float = 1.0) -> None:
        super().__init__()
        self.win = int(round(sample_rate * frame_length_ms / 1000))
        self.hop = int(round(sample_rate * frame_shift_ms / 1000))
        self.n_fft = 1 << (self.win - 1).bit_length()
        self.preemphasis = preemphasis
        self.mean_norm = mean_norm
        self.num_mel_bins = num_mel_bins
        # kaldi-native-fbank and Kaldi scale waveforms as 16-bit integers; a constant scale only
        # shifts log energies by a constant, which mean normalisation removes.
        self.waveform_scale = waveform_scale
        n = torch.arange(self.win, dtype=torch.float64)
        window = (0.5 - 0.5 * torch.cos(2 * math.pi * n / (self.win - 1))).pow(0.85)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("mel", kaldi_mel_banks(num_mel_bins, self.n_fft, sample_rate, low_freq,
                                                    high_freq), persistent=False)

    @property
    def dim(self) -> int:
        return self.num_mel_bins

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.clamp((lengths - self.win) // self.hop + 1, min=0)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        wave, lengths = as_batch(wave, lengths)
        if wave.shape[1] < self.win:
            wave = torch.nn.functional.pad(wave, (0, self.win - wave.shape[1]))
        frames = wave.float().unfold(1, self.win, self.hop) * self.waveform_scale  # (B, T, win)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        if self.preemphasis:
            prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - self.preemphasis * prev
        frames = frames * self.window
        spec = torch.fft.rfft(frames, n=self.n_fft).abs().pow(2)
        feats = torch.matmul(spec, self.mel.t())
        feats = torch.log(torch.clamp(feats, min=torch.finfo(torch.float32).eps))
        num_frames = self.num_frames(lengths)
        if self.mean_norm:
            feats = mean_normalize(feats, num_frames)
        else:
            feats = feats * frames_mask(num_frames, feats.shape[1]).unsqueeze(-1)
        return feats, num_frames
