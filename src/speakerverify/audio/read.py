"""Reading recordings: a path or a file's bytes -> validated mono float32 at 16 kHz.

Every problem becomes an :class:`~speakerverify.errors.AudioError` whose message names the file and
the reason.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerverify.audio.resample import to_mono_16k
from speakerverify.audio.validate import MIN_DURATION_S, check_waveform
from speakerverify.errors import AudioError

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
