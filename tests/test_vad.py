"""Speech activity before embedding (audio.vad): real clips with added silence, the no-speech
error, the short-clip policy, and the model-directory setting."""

from __future__ import annotations

import numpy as np
import pytest

from speakerverify.audio import load_audio
from speakerverify.audio.vad import FRAME_S, VadConfig, _smooth, keep_speech, speech_frames
from speakerverify.errors import AudioError, ModelError

SR = 16000


@pytest.fixture(scope="module")
def clip(test_speaker_clips) -> np.ndarray:
    first = next(iter(test_speaker_clips.values()))
    return load_audio(first[0])


def _pad(wave: np.ndarray, seconds: float, seed: int = 0) -> np.ndarray:
    """``wave`` with ``seconds`` of near-silence (-70 dBFS noise, as a quiet room) either side."""
    rng = np.random.default_rng(seed)
    quiet = lambda: (rng.standard_normal(int(seconds * SR)) * 10 ** (-70 / 20)).astype(np.float32)  # noqa: E731
    return np.concatenate([quiet(), wave, quiet()])


def test_added_silence_is_dropped(clip):
    padded = _pad(clip, 3.0)
    kept = keep_speech(padded, VadConfig())
    # The 6 s of silence go (all but the padding and the detector's start-up frames); the speech,
    # its own short pauses bridged, stays.
    assert kept.size < clip.size + 1.0 * SR
    assert kept.size > 0.6 * clip.size
    frames = speech_frames(padded)
    lead = int(3.0 / FRAME_S)
    assert frames[lead + 10:-lead - 10].mean() > 0.8
    assert frames[10:lead - 10].sum() == 0 and frames[-(lead - 10):].sum() == 0  # hangover aside


def test_vad_embedding_ignores_padding(clip):
    """With VAD the silence-padded clip embeds like the clip itself; without it, less so."""
    from speakerverify.verifier import Verifier

    padded = _pad(clip, 4.0)
    plain, vad = Verifier(vad=False), Verifier(vad=VadConfig())
    ref = plain.embed(clip)
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    with_vad, without = cos(vad.embed(padded), ref), cos(plain.embed(padded), ref)
    assert with_vad > without
    assert with_vad > 0.97
    # The calibration's duration is that of what is embedded: the speech, not the padding.
    assert vad.load(padded).size / SR < clip.size / SR + 1.0 < padded.size / SR


def test_no_speech_is_one_line_error():
    from speakerverify.verifier import Verifier

    quiet = (np.random.default_rng(1).standard_normal(3 * SR) * 1e-3).astype(np.float32)
    v = Verifier(vad=VadConfig())
    with pytest.raises(AudioError, match=r"^room\.wav: contains no speech"):
        v.load(quiet, name="room.wav")
    # Evaluation protocols score every item as given.
    assert v.speech(quiet, "room.wav", strict=False).size == quiet.size
    # Without VAD the same input is embedded (it is not silent by the -80 dBFS rule).
    assert Verifier(vad=False).load(quiet, name="room.wav").size == quiet.size


def test_short_clips_kept_whole(clip):
    short = np.ascontiguousarray(_pad(clip[:SR], 1.0))  # 3 s: 1 s of speech, 2 s of silence
    assert keep_speech(short, VadConfig(min_input_s=4.0)).size == short.size
    assert keep_speech(short, VadConfig(min_input_s=0.0)).size < 0.7 * short.size


def test_smoothing_bridges_gaps_and_pads():
    frames = np.zeros(30, dtype=bool)
    frames[[5, 7, 20]] = True
    mask = _smooth(frames, pad=1, gap=2)
    assert mask[4:9].all()          # 5..7 bridged, padded one frame each side
    assert not mask[10:18].any()    # the long gap stays a gap
    assert mask[19:22].all() and not mask[22:].any()


def test_model_yaml_setting(tmp_path):
    assert VadConfig.from_dict(None) is None and VadConfig.from_dict({}) is None
    assert VadConfig.from_dict(True) == VadConfig()
    assert VadConfig.from_dict({"min_input_s": 3}).min_input_s == 3
    with pytest.raises(ModelError, match="vad: unknown key 'min_input'"):
        VadConfig.from_dict({"min_input": 3})
    with pytest.raises(ModelError, match="aggressiveness"):
        VadConfig.from_dict({"aggressiveness": 7})
