"""Downmixing and resampling to the 16 kHz mono every model expects (soxr, high quality): a whole
array at once (:func:`to_mono_16k`), or block by block as a file is decoded (:class:`Mono16kStream`)."""

from __future__ import annotations

import numpy as np
import soxr

from speakerverify.audio.validate import SAMPLE_RATE
from speakerverify.errors import AudioError


def to_mono_16k(data: np.ndarray, rate: int, name: str = "<array>") -> np.ndarray:
    """Downmix (channels last) and resample to 16 kHz with soxr."""
    if data.ndim == 2:
        data = data.mean(axis=1)
    if rate <= 0:
        raise AudioError(name, f"invalid sample rate {rate}")
    if rate != SAMPLE_RATE and data.size:
        data = soxr.resample(data, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(data, dtype=np.float32)


class Mono16kStream:
    """:func:`to_mono_16k` one block of frames at a time, with soxr's streaming resampler (the same
    filter as ``soxr.resample``; the joined output matches the whole-array result sample for sample)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._soxr = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32",
                                                                          quality="HQ")

    def add(self, frames: np.ndarray) -> np.ndarray:
        """16 kHz mono samples for ``frames`` (frames x channels); the block may be reused afterwards."""
        # Downmix per block: the same per-frame mean as over the whole file.
        mono = frames.mean(axis=1) if frames.shape[1] > 1 else frames[:, 0].copy()
        return mono if self._soxr is None else self._soxr.resample_chunk(mono, last=False)

    def flush(self) -> np.ndarray:
        """The resampler's last samples, once the input has ended."""
        if self._soxr is None:
            return np.empty(0, dtype=np.float32)
        return self._soxr.resample_chunk(np.empty(0, dtype=np.float32), last=True)
