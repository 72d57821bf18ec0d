"""Audio input, the first stage: read a recording, downmix to mono, resample to 16 kHz, and
reject unusable input (:class:`~speakerverify.errors.AudioError`, naming the file and the reason).

* :mod:`~speakerverify.audio.read` -- files and uploaded bytes (:func:`load_audio`);
* :mod:`~speakerverify.audio.resample` -- downmix and resample (:func:`to_mono_16k`);
* :mod:`~speakerverify.audio.validate` -- checks on a decoded waveform (:func:`check_waveform`).
"""

from speakerverify.audio.read import AUDIO_EXTENSIONS, is_audio_path, load_audio
from speakerverify.audio.resample import to_mono_16k
from speakerverify.audio.validate import MIN_DURATION_S, SAMPLE_RATE, SILENCE_PEAK, check_waveform

__all__ = ["AUDIO_EXTENSIONS", "MIN_DURATION_S", "SAMPLE_RATE", "SILENCE_PEAK", "check_waveform", "is_audio_path",
           "load_audio", "to_mono_16k"]
