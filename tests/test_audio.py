from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speakerverify.audio import check_waveform, load_audio
from speakerverify.errors import AudioError


def test_reads_real_flac_as_16k_mono(test_speaker_clips):
    path = next(iter(test_speaker_clips.values()))[0]
    wave = load_audio(path)
    info = sf.info(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - info.frames) <= 1


def test_downmixes_and_resamples(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44100)
    wave = load_audio(path)
    assert abs(len(wave) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440) < 3


@pytest.mark.parametrize("make, problem", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("hello, I am text pretending to be audio\n" * 20), "not a readable audio file"),
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: sf.write(p, np.random.default_rng(0).normal(0, 0.1, 800).astype(np.float32), 16000), "too short"),
    (lambda p: sf.write(p, np.zeros(16000, dtype=np.float32), 16000), "silent"),
])
def test_bad_input_gives_one_line_naming_the_file(tmp_path, make, problem):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as exc:
        load_audio(path)
    message = str(exc.value)
    assert str(path) in message and problem in message and "\n" not in message


def test_rejects_nan_samples():
    wave = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    wave[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        check_waveform(wave, "x")
