"""Speech activity: drop silence and non-speech before the network.

The detector is WebRTC's GMM voice activity detector (``webrtcvad-wheels``: an 80 KB wheel with no
dependencies). Silero VAD was the alternative; its wheel needs torchaudio, which has no build for
the pinned torch, so it is not used. What this module adds around the detector is the policy, which
is what decides whether VAD helps or hurts (measured on dev, ``docs/ablation.md``):

* speech frames are padded by ``pad_s`` on each side and gaps shorter than ``gap_s`` are bridged,
  so word onsets and short pauses inside a phrase are kept;
* recordings shorter than ``min_input_s`` are kept whole (a 1-s keyword clip is mostly speech and
  its edges carry speaker information that a frame detector drops);
* when less than ``min_keep_s`` of speech is found in a longer recording, the recording is kept
  whole rather than cut to a fragment;
* a recording in which the detector finds less than ``min_speech_s`` of speech (its start-up
  frames can fire on a quiet room) has no speech: an :class:`AudioError` (unless ``strict=False``,
  for fixed evaluation protocols that score every item as given).

A model directory turns it on with a ``vad:`` section in ``model.yaml`` (keys of :class:`VadConfig`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from speakerverify.audio.validate import SAMPLE_RATE
from speakerverify.errors import AudioError, ModelError

FRAME_S = 0.03  # webrtcvad accepts 10, 20 or 30 ms frames


@dataclass(frozen=True)
class VadConfig:
    """The speech-activity policy (see the module docstring)."""

    aggressiveness: int = 2  # webrtcvad mode 0 (keeps most) .. 3 (drops most)
    min_input_s: float = 0.0
    min_keep_s: float = 0.5
    min_speech_s: float = 0.2
    pad_s: float = 0.15
    gap_s: float = 0.3

    @classmethod
    def from_dict(cls, spec: dict[str, Any] | None) -> VadConfig | None:
        """The ``vad:`` section of a model.yaml; ``None``/absent/``false`` means off."""
        if not spec:
            return None
        if spec is True:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ModelError(f"model.yaml: vad: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        cfg = cls(**spec)
        if cfg.aggressiveness not in (0, 1, 2, 3):
            raise ModelError(f"model.yaml: vad.aggressiveness must be 0-3, got {cfg.aggressiveness}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def speech_frames(wave: np.ndarray, aggressiveness: int = 2) -> np.ndarray:
    """One bool per 30-ms frame of a 16 kHz float waveform: does WebRTC's detector hear speech?"""
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    hop = int(FRAME_S * SAMPLE_RATE)
    n = wave.size // hop
    pcm = (np.clip(wave[: n * hop], -1.0, 1.0) * 32767).astype("<i2").tobytes()
    step = 2 * hop
    return np.fromiter((vad.is_speech(pcm[i * step:(i + 1) * step], SAMPLE_RATE) for i in range(n)),
                       dtype=bool, count=n)


def _smooth(frames: np.ndarray, pad: int, gap: int) -> np.ndarray:
    """Bridge gaps of at most ``gap`` frames between speech, then pad speech by ``pad`` frames."""
    mask = frames.copy()
    idx = np.flatnonzero(mask)
    if idx.size > 1:
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            if 1 < b - a <= gap + 1:
                mask[a:b] = True
    if pad and mask.any():
        # A dilation by `pad` frames each side (scipy.ndimage would do the same; this is one line).
        mask = np.convolve(mask.astype(np.int8), np.ones(2 * pad + 1, dtype=np.int8), mode="same") > 0
    return mask


def keep_speech(wave: np.ndarray, cfg: VadConfig, name: str = "<array>", strict: bool = True) -> np.ndarray:
    """The speech of ``wave`` (16 kHz mono float32) under policy ``cfg``; see the module docstring."""
    if wave.size < cfg.min_input_s * SAMPLE_RATE:
        return wave
    frames = speech_frames(wave, cfg.aggressiveness)
    if frames.sum() * FRAME_S < cfg.min_speech_s:
        if strict:
            raise AudioError(name, "contains no speech (the voice activity detector found none)")
        return wave
    mask = _smooth(frames, round(cfg.pad_s / FRAME_S), round(cfg.gap_s / FRAME_S))
    hop = int(FRAME_S * SAMPLE_RATE)
    samples = np.repeat(mask, hop)
    if samples.size < wave.size:  # the tail shorter than a frame follows its last frame
        samples = np.concatenate([samples, np.full(wave.size - samples.size, samples[-1])])
    if samples.sum() < cfg.min_keep_s * SAMPLE_RATE:
        return wave
    return np.ascontiguousarray(wave[samples])
