"""``stacked``: several front ends run side by side, for a fusion of networks with different features.

Each member front end (any :func:`~speakerverify.features.build_frontend` config) maps the same
waveform batch to its own features; their frame counts differ by a few frames (Kaldi's
``snip_edges`` framing against SpeechBrain's centred STFT, both 10-ms hops). Rather than trim every
member to the shortest, which would change what each member sees, the outputs are padded to the
longest and each member's block carries one extra channel that is 1 on its valid frames: the
feature axis is ``[feats_1 (F_1), valid_1 (1), feats_2 (F_2), valid_2 (1), ...]`` and
``num_frames`` is the longest member's count. :class:`~speakerverify.models.fusion.Fusion` splits
the axis again and gives each member exactly its own frames and frame count, so a fusion member's
embedding equals the member model's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speakerverify.features.common import as_batch, frames_mask


class StackedFrontend(nn.Module):
    """``members``: the member front ends, built (``build_frontend`` builds them from the config's
    ``members`` list)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("a stacked front end needs at least two member front ends")
        self.members = nn.ModuleList(members)

    @property
    def dims(self) -> list[int]:
        """Each member's feature size (without its validity channel)."""
        return [int(m.dim) for m in self.members]

    @property
    def dim(self) -> int:
        return sum(d + 1 for d in self.dims)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        wave, lengths = as_batch(wave, lengths)
        outs = [m(wave, lengths) for m in self.members]
        longest = max(feats.shape[1] for feats, _ in outs)
        blocks, counts = [], []
        for feats, num_frames in outs:
            valid = frames_mask(num_frames, longest).unsqueeze(-1).to(feats.dtype)
            blocks += [F.pad(feats, (0, 0, 0, longest - feats.shape[1])), valid]
            counts.append(num_frames)
        return torch.cat(blocks, dim=-1), torch.stack(counts).amax(0)
