"""Audio input, the first stage: read a recording, downmix to mono, resample to 16 kHz, and
reject unusable input (:class:`~speakerverify.errors.AudioError`, naming the file and the reason).

* :mod:`~speakerverify.audio.limits` -- the one rule bounding input: sample rates, channels and
  length (``max_audio_s``, default 10 minutes), checked from the header;
* :mod:`~speakerverify.audio.read` -- files, pipes, stdin and uploaded bytes (:func:`load_audio`,
  :func:`probe`), decoded in blocks;
* :mod:`~speakerverify.audio.resample` -- downmix and resample (:func:`to_mono_16k`, streaming);
* :mod:`~speakerverify.audio.validate` -- checks on a decoded waveform (:func:`check_waveform`).
"""

from speakerverify.audio.limits import (
    DEFAULT_MAX_AUDIO_S,
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    check_header,
    check_length,
    check_limit,
    pipe_byte_limit,
)
from speakerverify.audio.read import AUDIO_EXTENSIONS, BLOCK_SAMPLES, is_audio_path, load_audio, probe
from speakerverify.audio.resample import to_mono_16k
from speakerverify.audio.validate import MIN_DURATION_S, SAMPLE_RATE, SILENCE_PEAK, check_waveform

__all__ = ["AUDIO_EXTENSIONS", "BLOCK_SAMPLES", "DEFAULT_MAX_AUDIO_S", "MAX_CHANNELS", "MAX_SAMPLE_RATE",
           "MIN_DURATION_S", "MIN_SAMPLE_RATE", "SAMPLE_RATE", "SILENCE_PEAK", "check_header", "check_length",
           "check_limit", "check_waveform", "is_audio_path", "load_audio", "pipe_byte_limit", "probe", "to_mono_16k"]
