"""Builders of audio files for the input-bound and fuzz tests: valid clips, a WAV with a forged
sample rate, a FLAC streamed without its length, and a child process with capped memory."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

#: STREAMINFO's 64 bits of sample rate (20), channels - 1 (3), bits per sample - 1 (5) and total
#: samples (36) start here: 'fLaC' (4 bytes), the block header (4), min/max block and frame sizes (10).
FLAC_INFO_OFFSET = 18


def noise(n: int, channels: int = 1, seed: int = 0, level: float = 0.1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, level, (n, channels)).astype(np.float32)
    return np.clip(x, -1, 1)[:, 0] if channels == 1 else np.clip(x, -1, 1)


def encode(wave: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def pcm_wav(samples: bytes, rate: int, channels: int = 1, bits: int = 16, fmt_tag: int = 1,
            data_size: int | None = None) -> bytes:
    """A canonical 44-byte-header WAV around raw ``samples``, every header field as given (lies too)."""
    align = channels * bits // 8
    size = len(samples) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, (rate * align) & 0xFFFFFFFF, align & 0xFFFF, bits)
    return (b"RIFF" + struct.pack("<I", (36 + len(samples)) & 0xFFFFFFFF) + b"WAVE" + b"fmt "
            + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size & 0xFFFFFFFF) + samples)


def fake_rate_wav(rate: int = 1, size: int = 480_000) -> bytes:
    """``size`` bytes of 16-bit noise whose header claims ``rate`` Hz (1 Hz: 240,000 s of audio)."""
    pcm = (noise(size // 2) * 32767).astype("<i2").tobytes()
    return pcm_wav(pcm, rate)


def flac_info(data: bytes) -> tuple[int, int, int, int]:
    """(sample rate, channels, bits per sample, total samples) from a FLAC's STREAMINFO."""
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "STREAMINFO must be the first metadata block"
    v = int.from_bytes(data[FLAC_INFO_OFFSET:FLAC_INFO_OFFSET + 8], "big")
    return v >> 44, ((v >> 41) & 0x7) + 1, ((v >> 36) & 0x1F) + 1, v & ((1 << 36) - 1)


def with_flac_total(data: bytes, total: int) -> bytes:
    """``data`` with STREAMINFO's total-samples field set to ``total`` (0: unknown, as in a stream)."""
    v = int.from_bytes(data[FLAC_INFO_OFFSET:FLAC_INFO_OFFSET + 8], "big")
    v = (v & ~((1 << 36) - 1)) | (total & ((1 << 36) - 1))
    return data[:FLAC_INFO_OFFSET] + v.to_bytes(8, "big") + data[FLAC_INFO_OFFSET + 8:]


def streamed_flac(wave: np.ndarray, rate: int) -> bytes:
    """A FLAC as ``ffmpeg -i a.flac -f flac - | cat > piped.flac`` writes it: ffmpeg cannot seek back
    into a pipe to fill in STREAMINFO, so the total length and the MD5 stay zero."""
    data = with_flac_total(encode(wave, rate, "FLAC", "PCM_16"), 0)
    md5 = FLAC_INFO_OFFSET + 8
    return data[:md5] + bytes(16) + data[md5 + 16:]


def run_capped(code: str, limit_bytes: int, stdin: bytes | None = None, args: list[str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -c code`` (or ``python args`` when ``args`` is given) with its address space capped
    at ``limit_bytes``: an attempt to allocate more fails at once instead of taking the machine's memory."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, *(args if args is not None else ["-c", code])]
    return subprocess.run(cmd, input=stdin, capture_output=True, preexec_fn=cap, env=env, timeout=timeout)
