"""Validation of decoded audio: a mono float waveform at 16 kHz that a model can use.

Every problem becomes an :class:`~speakerverify.errors.AudioError` naming the input and the reason.
"""

from __future__ import annotations

import numpy as np

from speakerverify.errors import AudioError

SAMPLE_RATE = 16000
#: Shortest clip any shipped model accepts; models may ask for more.
MIN_DURATION_S = 0.1
#: Peak amplitude below which a clip counts as silence (about -80 dBFS).
SILENCE_PEAK = 1e-4


def check_waveform(wave: np.ndarray, name: str, min_duration_s: float = MIN_DURATION_S,
                   sample_rate: int = SAMPLE_RATE, reject_silence: bool = True) -> np.ndarray:
    """Validate a mono float waveform at ``sample_rate``; return it as contiguous float32.

    ``reject_silence=False`` is for fixed evaluation protocols, which score every item as given.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise AudioError(name, f"expected a mono waveform, got an array of shape {wave.shape}")
    if wave.size == 0:
        raise AudioError(name, "contains no samples")
    if not np.issubdtype(wave.dtype, np.floating):
        if np.issubdtype(wave.dtype, np.integer):
            wave = wave.astype(np.float32) / float(np.iinfo(wave.dtype).max)
        else:
            raise AudioError(name, f"unsupported sample type {wave.dtype}")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if not np.all(np.isfinite(wave)):
        raise AudioError(name, "contains NaN or infinite samples")
    duration = wave.size / sample_rate
    if duration < min_duration_s:
        raise AudioError(name, f"too short: {duration:.3f} s, at least {min_duration_s:.2f} s needed")
    # max and min rather than max(abs()): no temporary copy of a long waveform.
    if reject_silence and max(float(wave.max()), -float(wave.min())) < SILENCE_PEAK:
        raise AudioError(name, "is silent (no signal above -80 dBFS)")
    return wave
