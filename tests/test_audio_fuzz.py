"""Property-based tests of the audio reader (issue 10, item 9): random headers, truncations, byte
flips, sample rates and lengths. Every outcome is a valid 16 kHz waveform or the project's one-line
:class:`AudioError` naming the input; never another exception, never memory beyond the limit's worth.

Memory is watched with tracemalloc, which sees numpy's buffers (the allocations that used to run
away: a waveform sized from a lying header); libsndfile's own allocations are covered by the
capped-address-space tests in test_audio_bounds.py.
"""

from __future__ import annotations

import io
import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audio_helpers import FLAC_INFO_OFFSET, encode, noise, pcm_wav, streamed_flac, with_flac_total
from speakerverify.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, SAMPLE_RATE, load_audio
from speakerverify.errors import AudioError

NAME = "fuzz.bin"
LIMIT_S = 20.0
#: Most bytes numpy may hold at once while reading: a few copies of the limit's worth of 16 kHz
#: float32 (the blocks, the resampled parts and the joined waveform), plus the input bytes.
MEMORY_BOUND = 4 * int(LIMIT_S * SAMPLE_RATE * 4) + 8 * (1 << 20)

# An exception escaping a libsndfile callback is printed to stderr (a traceback): fail on it.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

#: Examples per property; SPEAKERVERIFY_FUZZ_EXAMPLES=2000 for a longer hunt.
EXAMPLES = int(os.environ.get("SPEAKERVERIFY_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _clip(rate: int, fmt: str, subtype: str | None, seconds: float = 0.4, channels: int = 1) -> bytes:
    return encode(noise(int(rate * seconds), channels=channels, seed=rate), rate, fmt, subtype)


#: Valid files to cut and corrupt: (format, subtype) at a few rates and channel counts.
BASES = {
    "wav16": _clip(16000, "WAV", "PCM_16"),
    "wav-float-stereo": _clip(44100, "WAV", "FLOAT", channels=2),
    "wav-u8": _clip(8000, "WAV", "PCM_U8"),
    "flac": _clip(22050, "FLAC", "PCM_16"),
    "flac-streamed": streamed_flac(noise(48000, seed=1), 48000),
    "ogg": _clip(48000, "OGG", "VORBIS", seconds=1.0),
    "opus": _clip(48000, "OGG", "OPUS", seconds=1.0),
    "mp3": _clip(16000, "MP3", "MPEG_LAYER_III", seconds=1.0),
    "aiff": _clip(32000, "AIFF", "PCM_24"),
}


def check_outcome(data: bytes, limit_s: float = LIMIT_S) -> np.ndarray | None:
    """The property: a valid waveform, or one AudioError line naming the input; memory bounded."""
    tracemalloc.start()
    try:
        try:
            wave = load_audio(data, name=NAME, max_audio_s=limit_s)
        except AudioError as exc:
            message = str(exc)
            assert message.startswith(f"{NAME}: ") and len(message) > len(NAME) + 2
            assert "\n" not in message and "\r" not in message, message
            wave = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND + 2 * len(data), f"numpy held {peak / 1e6:.1f} MB"
    if wave is not None:
        assert wave.ndim == 1 and wave.dtype == np.float32 and wave.flags.c_contiguous
        assert 0 < wave.size <= limit_s * SAMPLE_RATE + 16
        assert np.all(np.isfinite(wave))
    return wave


# -- headers -------------------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)


@FUZZ
@given(rate=st.one_of(u32, st.integers(1, 500_000)), channels=st.integers(0, 2**16 - 1),
       bits=st.sampled_from([0, 1, 7, 8, 16, 24, 32, 64, 65535]),
       fmt_tag=st.sampled_from([0, 1, 3, 6, 7, 0xFFFE, 0xBEEF]), data_size=st.one_of(st.none(), u32),
       n_bytes=st.integers(0, 64_000))
def test_wav_with_random_header_fields(rate, channels, bits, fmt_tag, data_size, n_bytes) -> None:
    pcm = np.random.default_rng(n_bytes).integers(-2000, 2000, n_bytes // 2, dtype="<i2").tobytes()
    check_outcome(pcm_wav(pcm, rate, channels, bits, fmt_tag, data_size))


@FUZZ
@given(field=st.integers(0, 2**64 - 1), mask=st.sampled_from([
    (2**20 - 1) << 44,  # sample rate
    0x7 << 41,  # channels - 1
    0x1F << 36,  # bits per sample - 1
    2**36 - 1,  # total samples
    2**64 - 1,  # all of it
]), base=st.sampled_from(["flac", "flac-streamed"]))
def test_flac_with_random_streaminfo(field, mask, base) -> None:
    data = BASES[base]
    v = int.from_bytes(data[FLAC_INFO_OFFSET:FLAC_INFO_OFFSET + 8], "big")
    v = (v & ~mask) | (field & mask)
    check_outcome(data[:FLAC_INFO_OFFSET] + v.to_bytes(8, "big") + data[FLAC_INFO_OFFSET + 8:])


@FUZZ
@given(total=st.integers(0, 2**36 - 1))
def test_flac_with_any_claimed_length(total) -> None:
    """A claimed length past the limit is refused from the header; any other is read or refused."""
    wave = check_outcome(with_flac_total(BASES["flac"], total))
    if total > LIMIT_S * 22050:
        assert wave is None


# -- cuts and corruption ---------------------------------------------------------------------------


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), cut=st.floats(0, 1))
def test_truncated_files(base, cut) -> None:
    data = BASES[base]
    check_outcome(data[: int(len(data) * cut)])


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                            min_size=1, max_size=12))
def test_corrupted_bytes(base, flips) -> None:
    data = bytearray(BASES[base])
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    check_outcome(bytes(data))


MAGIC = [b"", b"RIFF", b"fLaC", b"OggS", b"ID3", b"FORM", b"\xff\xfb", b"RIFF\xff\xff\xff\xffWAVE"]


@FUZZ
@given(magic=st.sampled_from(MAGIC), rest=st.binary(max_size=4096))
def test_random_bytes(magic, rest) -> None:
    assert check_outcome(magic + rest) is None or magic


# -- valid files at any rate and length --------------------------------------------------------------


@FUZZ
@given(rate=st.integers(1, 600_000), seconds=st.floats(0, 1.5), channels=st.integers(1, 3),
       fmt=st.sampled_from([("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")]))
def test_valid_files_at_random_rates_and_lengths(rate, seconds, channels, fmt) -> None:
    n = int(rate * seconds)
    if fmt[0] == "FLAC" and not 1 <= rate <= 655_350:
        return  # FLAC cannot describe the rate
    try:
        data = encode(noise(n, channels=channels, seed=n), rate, *fmt) if n else encode(
            np.zeros((0, channels), np.float32), rate, *fmt)
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return  # libsndfile will not write it; nothing to read
    wave = check_outcome(data)
    in_range = MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
    long_enough = seconds >= 0.1 + 2 / rate
    if not in_range:
        assert wave is None
    elif long_enough and n:
        assert wave is not None and abs(len(wave) - n * SAMPLE_RATE / rate) <= 2


@FUZZ
@given(seconds=st.floats(0.2, 3 * LIMIT_S), streamed=st.booleans())
def test_length_limit_at_any_length(seconds, streamed) -> None:
    """Under the limit: read in full; over it: refused, with or without a length in the header."""
    n = int(16000 * seconds)
    wave = noise(n, seed=n)
    data = streamed_flac(wave, 16000) if streamed else encode(wave, 16000, "FLAC", "PCM_16")
    out = check_outcome(data, limit_s=LIMIT_S)
    if n <= LIMIT_S * 16000:
        assert out is not None and len(out) == n
    else:
        assert out is None


def test_bases_are_readable() -> None:
    """The corpus the fuzzers mutate is itself valid (else the properties above would test little)."""
    for name, data in BASES.items():
        assert check_outcome(data) is not None, name
        assert sf.info(io.BytesIO(data)).samplerate > 0


@pytest.mark.parametrize("base", sorted(BASES))
def test_every_prefix_of_a_header(base) -> None:
    """Every cut inside the first 200 bytes (where the headers are), exhaustively."""
    data = BASES[base]
    for cut in range(min(200, len(data))):
        check_outcome(data[:cut])
