"""How the store keeps values in SQLite: embeddings as little-endian float32 blobs, enrollment
audio as 16-bit FLAC at 16 kHz."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from speakerverify.audio import SAMPLE_RATE
from speakerverify.errors import DataError


def encode_flac(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> np.ndarray:
    wave, rate = sf.read(io.BytesIO(data), dtype="float32")
    if rate != SAMPLE_RATE:
        raise DataError(f"stored clip has sample rate {rate}, expected {SAMPLE_RATE}")
    return wave


def to_blob(vec: np.ndarray) -> bytes:
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    v = np.frombuffer(blob, dtype="<f4")
    if v.size != dim:
        raise DataError(f"stored embedding has {v.size} values, expected {dim}")
    return v.astype(np.float32)
