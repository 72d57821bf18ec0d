"""Audio input: read a recording, downmix to mono, resample to 16 kHz, and reject unusable input.

Every problem becomes an :class:`AudioError` whose message names the file and the reason.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from speakerverify.errors import AudioError

SAMPLE_RATE = 16000
#: Shortest clip any shipped model accepts; models may ask for more.
MIN_DURATION_S = 0.1
#: Peak amplitude below which a clip counts as silence (about -80 dBFS).
SILENCE_PEAK = 1e-4

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


def _read(source: str | os.PathLike | bytes, name: str) -> tuple[np.ndarray, int]:
    if isinstance(source, bytes):
        if not source:
            raise AudioError(name, "file is empty")
        handle: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise AudioError(name, "no such file")
        if path.is_dir():
            raise AudioError(name, "is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(name, "file is empty")
        handle = str(path)
    try:
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise AudioError(name, f"not a readable audio file ({_short(exc)})") from None
    except (RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(name, f"not a readable audio file ({_short(exc)})") from None
    return data, int(rate)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libsndfile messages repeat the file name; keep the reason only.
    if ":" in text and text.lower().startswith("error opening"):
        text = text.rsplit(":", 1)[-1].strip()
    return text[:120]


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
    if reject_silence and float(np.max(np.abs(wave))) < SILENCE_PEAK:
        raise AudioError(name, "is silent (no signal above -80 dBFS)")
    return wave


def to_mono_16k(data: np.ndarray, rate: int, name: str = "<array>") -> np.ndarray:
    """Downmix (channels last) and resample to 16 kHz with soxr."""
    if data.ndim == 2:
        data = data.mean(axis=1)
    if rate <= 0:
        raise AudioError(name, f"invalid sample rate {rate}")
    if rate != SAMPLE_RATE and data.size:
        data = soxr.resample(data, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(data, dtype=np.float32)


def load_audio(source: str | os.PathLike | bytes, *, min_duration_s: float = MIN_DURATION_S,
               name: str | None = None) -> np.ndarray:
    """Read ``source`` (a path or the bytes of a file) as mono float32 at 16 kHz, validated."""
    label = name or (str(source) if not isinstance(source, bytes) else "<upload>")
    data, rate = _read(source, label)
    if data.shape[0] == 0:
        raise AudioError(label, "contains no samples")
    wave = to_mono_16k(data, rate, label)
    return check_waveform(wave, label, min_duration_s)


def is_audio_path(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(AUDIO_EXTENSIONS)
