"""``seed-stft``: the seed notebook's linear-magnitude STFT (n_fft 1024, hop 512, 513 bins, centred
frames: 32 frames for one second)."""

from __future__ import annotations

import torch
from torch import nn

from speakerverify.features.common import as_batch, frames_mask


class SeedStft(nn.Module):
    """|STFT| as the seed notebook computed it: hann window, n_fft 1024, hop 512, centred frames."""

    def __init__(self, n_fft: int = 1024, hop: int = 512, log: bool = False) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.log = log
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def dim(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths // self.hop + 1

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        wave, lengths = as_batch(wave, lengths)
        spec = torch.stft(wave.float(), self.n_fft, self.hop, window=self.window, center=True,
                          pad_mode="constant", return_complex=True).abs().transpose(1, 2)
        if self.log:
            spec = torch.log1p(spec)
        num_frames = self.num_frames(lengths)
        return spec * frames_mask(num_frames, spec.shape[1]).unsqueeze(-1), num_frames
