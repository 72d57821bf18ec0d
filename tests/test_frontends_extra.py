"""The speechbrain-fbank front end: registration, frame counts, padding invariance."""

from __future__ import annotations

import numpy as np
import torch

from speakerverify.features import build_frontend
from speakerverify.features.speechbrain_fbank import SpeechBrainFbank, speechbrain_mel_filters


def test_registered_with_build_frontend() -> None:
    fe = build_frontend({"type": "speechbrain-fbank", "num_mel_bins": 80})
    assert isinstance(fe, SpeechBrainFbank) and fe.dim == 80


def test_frame_count_matches_centred_stft() -> None:
    fe = SpeechBrainFbank()
    for n in (1600, 16000, 16159, 16160):
        feats, frames = fe(torch.randn(1, n))
        expected = torch.stft(torch.randn(n), 400, 160, window=torch.hamming_window(400), center=True,
                              pad_mode="constant", return_complex=True).shape[-1]
        assert feats.shape == (1, expected, 80) and int(frames[0]) == expected


def test_matches_plain_stft_pipeline() -> None:
    """Same numbers as torch.stft + SpeechBrain's dB conversion and sentence mean norm."""
    torch.manual_seed(0)
    wave = torch.randn(12345) * 0.1
    spec = torch.stft(wave, 400, 160, window=torch.hamming_window(400), center=True, pad_mode="constant",
                      return_complex=True).abs().pow(2).t()
    db = 10 * torch.log10(torch.clamp(spec @ speechbrain_mel_filters(80, 400, 16000, 0.0, 8000.0), min=1e-10))
    db = torch.maximum(db, db.max() - 80.0)
    ref = db - db.mean(0, keepdim=True)
    ours, _ = SpeechBrainFbank()(wave[None])
    torch.testing.assert_close(ours[0], ref, atol=1e-3, rtol=1e-4)


def test_padded_batch_gives_single_features() -> None:
    fe = SpeechBrainFbank()
    rng = np.random.default_rng(0)
    waves = [torch.from_numpy(rng.standard_normal(n).astype(np.float32)) for n in (16000, 4000, 9999)]
    batch = torch.zeros(3, 16000)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    feats, frames = fe(batch, torch.tensor([len(w) for w in waves]))
    for i, w in enumerate(waves):
        single, n = fe(w[None])
        assert int(frames[i]) == int(n[0])
        torch.testing.assert_close(feats[i, : int(n[0])], single[0], atol=1e-4, rtol=1e-4)
        assert torch.all(feats[i, int(n[0]):] == 0)
