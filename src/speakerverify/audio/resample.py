"""Downmixing and resampling to the 16 kHz mono every model expects (soxr, high quality)."""

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
