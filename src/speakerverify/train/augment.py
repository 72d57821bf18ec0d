"""On-the-fly, seeded data augmentation for training (waveform and feature domain).

* additive noise: coloured noise (white/pink/brown) and babble from other training speakers,
  at a random SNR;
* room reverberation: impulse responses simulated with pyroomacoustics (a seeded bank of shoebox
  rooms, made once and cached in memory);
* telephone band: 8 kHz band-limit with soxr plus mu-law (G.711-like) or coarse (GSM-like)
  quantisation, and a 300-3400 Hz band-pass;
* SpecAugment-style time and frequency masking on features;
* speed perturbation lives in scripts/make_teacher_targets.py, where perturbed copies become new
  speakers (and get their own teacher embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
import torch
from scipy.signal import butter, fftconvolve, sosfilt

SR = 16000


@dataclass
class AugmentConfig:
    p_noise: float = 0.4
    p_babble: float = 0.2
    snr_db: tuple[float, float] = (0.0, 20.0)
    p_reverb: float = 0.3
    n_rooms: int = 60
    p_telephone: float = 0.3
    p_gain: float = 0.5
    spec_time_masks: int = 1
    spec_time_width: int = 10
    spec_freq_masks: int = 1
    spec_freq_width: int = 8
    p_spec: float = 0.5


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise: shape white noise's spectrum by 1/f^alpha."""
    alpha = rng.choice([0.0, 1.0, 2.0])
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    x = np.fft.irfft(spec / freqs ** (alpha / 2), n)
    return (x / (np.std(x) + 1e-9)).astype(np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    p_sig = np.mean(signal ** 2) + 1e-10
    p_noise = np.mean(noise ** 2) + 1e-10
    return signal + noise * np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))


def simulate_rirs(n: int, seed: int = 0) -> list[np.ndarray]:
    """A bank of room impulse responses from random shoebox rooms (image source method)."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rirs = []
    while len(rirs) < n:
        dims = rng.uniform([3, 3, 2.4], [10, 8, 3.5])
        rt60 = rng.uniform(0.2, 0.8)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:
            continue
        room = pra.ShoeBox(dims, fs=SR, materials=pra.Material(absorption), max_order=min(max_order, 12))
        room.add_source(rng.uniform([0.5] * 3, dims - 0.5))
        room.add_microphone(rng.uniform([0.5] * 3, dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)
        rirs.append(rir / (np.max(np.abs(rir)) + 1e-9))
    return rirs


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    peak = int(np.argmax(np.abs(rir)))
    y = fftconvolve(x, rir)[peak:peak + len(x)]
    return (y * (np.std(x) / (np.std(y) + 1e-9))).astype(np.float32)


_TEL_SOS = butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")


def telephone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Narrowband channel: 8 kHz, 300-3400 Hz, mu-law or coarse quantisation, back to 16 kHz."""
    y = soxr.resample(x, SR, 8000)
    y = sosfilt(_TEL_SOS, y)
    peak = np.max(np.abs(y)) + 1e-9
    y = y / peak * rng.uniform(0.3, 0.95)
    if rng.random() < 0.6:
        mu = 255.0
        comp = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
        comp = np.round(comp * 127) / 127
        y = np.sign(comp) * ((1 + mu) ** np.abs(comp) - 1) / mu
    else:
        levels = 2 ** int(rng.integers(6, 10))
        y = np.round(y * levels) / levels
    y = soxr.resample(y.astype(np.float32), 8000, SR).astype(np.float32)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]


class WaveAugmenter:
    def __init__(self, config: AugmentConfig, seed: int = 0, babble_pool: list[np.ndarray] | None = None) -> None:
        self.cfg = config
        self.rng = np.random.default_rng(seed)
        self.babble_pool = babble_pool or []
        self._rirs: list[np.ndarray] | None = None

    @property
    def rirs(self) -> list[np.ndarray]:
        if self._rirs is None:
            self._rirs = simulate_rirs(self.cfg.n_rooms, seed=int(self.rng.integers(1 << 30)))
        return self._rirs

    def _babble(self, n: int) -> np.ndarray:
        k = int(self.rng.integers(3, 7))
        out = np.zeros(n, dtype=np.float32)
        for _ in range(k):
            src = self.babble_pool[int(self.rng.integers(len(self.babble_pool)))]
            if len(src) < n:
                src = np.pad(src, (0, n - len(src)))
            start = int(self.rng.integers(0, len(src) - n + 1))
            seg = src[start:start + n]
            out += seg / (np.std(seg) + 1e-9)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        cfg, rng = self.cfg, self.rng
        x = x.astype(np.float32)
        if cfg.p_reverb and rng.random() < cfg.p_reverb:
            x = reverberate(x, self.rirs[int(rng.integers(len(self.rirs)))])
        r = rng.random()
        if r < cfg.p_noise:
            x = mix_at_snr(x, coloured_noise(len(x), rng), rng.uniform(*cfg.snr_db))
        elif r < cfg.p_noise + cfg.p_babble and self.babble_pool:
            x = mix_at_snr(x, self._babble(len(x)), rng.uniform(max(cfg.snr_db[0], 5.0), cfg.snr_db[1] + 5))
        if cfg.p_telephone and rng.random() < cfg.p_telephone:
            x = telephone(x, rng)
        if rng.random() < cfg.p_gain:
            x = x * 10 ** (rng.uniform(-20, 6) / 20)
        peak = np.max(np.abs(x))
        if peak > 1.0:
            x = x / peak
        return x.astype(np.float32)


def spec_augment(feats: torch.Tensor, num_frames: torch.Tensor, cfg: AugmentConfig,
                 generator: torch.Generator) -> torch.Tensor:
    """Zero random time and frequency bands of (B, T, F) features (in place on a copy)."""
    feats = feats.clone()
    b, _, f = feats.shape
    for i in range(b):
        if torch.rand(1, generator=generator).item() >= cfg.p_spec:
            continue
        t_len = int(num_frames[i])
        for _ in range(cfg.spec_time_masks):
            w = int(torch.randint(0, cfg.spec_time_width + 1, (1,), generator=generator))
            if 0 < w < t_len:
                s = int(torch.randint(0, t_len - w, (1,), generator=generator))
                feats[i, s:s + w] = 0
        for _ in range(cfg.spec_freq_masks):
            w = int(torch.randint(0, cfg.spec_freq_width + 1, (1,), generator=generator))
            if w:
                s = int(torch.randint(0, f - w, (1,), generator=generator))
                feats[i, :, s:s + w] = 0
    return feats
