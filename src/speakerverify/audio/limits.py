"""The one rule that bounds audio input, for the CLI, the Python API and the service alike.

A recording is checked from its header before anything is decoded: the sample rate must lie in
``MIN_SAMPLE_RATE``-``MAX_SAMPLE_RATE`` (4-384 kHz: 4 kHz is below any telephone band, 384 kHz the
highest rate audio interfaces record at), it may have at most ``MAX_CHANNELS`` channels, and the
length the header gives must be at most ``max_audio_s`` seconds (``DEFAULT_MAX_AUDIO_S``, 10
minutes, unless the caller says otherwise: ``--max-audio-s`` on the command line, ``max_audio_s=``
in :class:`~speakerverify.verifier.Verifier`, :class:`~speakerverify.store.SpeakerStore` and the
service's settings). A header without a length (a FLAC or OGG streamed through a pipe) is held to
the same limit while it is decoded (:mod:`speakerverify.audio.read`).
"""

from __future__ import annotations

import math

from speakerverify.errors import AudioError

#: Longest recording accepted unless the caller sets another limit (``--max-audio-s``).
DEFAULT_MAX_AUDIO_S = 600.0
#: Sample rates accepted from a file header (Hz).
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000
#: Most channels accepted (third-order ambisonics has 16; libsndfile itself allows 1024).
MAX_CHANNELS = 64
#: Bytes per second of audio allowed from a pipe or stdin: 48 kHz, stereo, 32-bit samples.
PIPE_BYTES_PER_S = 48000 * 2 * 4
#: libsndfile's frame count for a stream whose header gives no total length (SF_COUNT_MAX).
UNKNOWN_FRAMES = 2**63 - 1


def check_limit(max_audio_s: float) -> float:
    """``max_audio_s`` as a float; refuses zero, negative and non-finite limits."""
    value = float(max_audio_s)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"max_audio_s must be a positive number of seconds, not {max_audio_s!r}")
    return value


def pipe_byte_limit(max_audio_s: float = DEFAULT_MAX_AUDIO_S) -> int:
    """Most bytes read from a pipe or stdin for a limit of ``max_audio_s`` seconds (plus 1 MiB of headers)."""
    return int(check_limit(max_audio_s) * PIPE_BYTES_PER_S) + (1 << 20)


def too_long(name: str, seconds: float | None, max_audio_s: float) -> AudioError:
    """The one "too long" error; ``seconds`` is None when the header gave no length."""
    if seconds is None:
        return AudioError(name, f"too long: over {max_audio_s:g} s (its header gives no length), "
                                f"at most {max_audio_s:g} s per recording")
    return AudioError(name, f"too long: {seconds:.0f} s, at most {max_audio_s:g} s per recording")


def check_length(n_samples: int, sample_rate: int, name: str, max_audio_s: float) -> None:
    """Refuse ``n_samples`` at ``sample_rate`` if longer than ``max_audio_s``."""
    seconds = n_samples / sample_rate
    if seconds > max_audio_s:
        raise too_long(name, seconds, max_audio_s)


def check_header(sample_rate: int, channels: int, frames: int, name: str,
                 max_audio_s: float = DEFAULT_MAX_AUDIO_S) -> int | None:
    """Check a header's sample rate, channels and length before decoding; returns the frame count,
    or None when the header gives no total length (a streamed FLAC or OGG)."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(name, f"sample rate {sample_rate} Hz is outside the {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz "
                               "accepted")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(name, f"{channels} channels, at most {MAX_CHANNELS} accepted")
    if frames >= UNKNOWN_FRAMES or frames < 0:
        return None
    check_length(frames, sample_rate, name, max_audio_s)
    return frames
