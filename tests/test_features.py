from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from speakerverify.features import KaldiFbank, SeedStft


def test_seed_stft_shape_for_one_second():
    feats, frames = SeedStft()(torch.randn(2, 16000))
    assert feats.shape == (2, 32, 513)
    assert frames.tolist() == [32, 32]


def test_seed_stft_values_match_numpy():
    x = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    feats, _ = SeedStft()(torch.from_numpy(x))
    padded = np.pad(x, 512)
    window = np.hanning(1025)[:-1]  # periodic Hann, as torch.hann_window
    frame = padded[512 * 5: 512 * 5 + 1024] * window
    np.testing.assert_allclose(feats[0, 5].numpy(), np.abs(np.fft.rfft(frame)), rtol=1e-3, atol=1e-3)


def test_fbank_matches_kaldi_native_fbank(test_speaker_clips):
    knf = pytest.importorskip("kaldi_native_fbank")
    path = next(iter(test_speaker_clips.values()))[0]
    wave, _ = sf.read(path, dtype="float32")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = 80
    ref_fb = knf.OnlineFbank(opts)
    ref_fb.accept_waveform(16000, (wave * 32768).tolist())
    ref_fb.input_finished()
    ref = np.stack([ref_fb.get_frame(i) for i in range(ref_fb.num_frames_ready)])
    ours, frames = KaldiFbank(mean_norm=False, waveform_scale=32768.0)(torch.from_numpy(wave))
    assert ours.shape[1] == ref.shape[0] == int(frames[0])
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=2e-3)


def test_fbank_padding_does_not_change_features():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=12000).astype(np.float32), rng.normal(size=20000).astype(np.float32)
    batch = torch.zeros(2, 20000)
    batch[0, :12000], batch[1] = torch.from_numpy(a), torch.from_numpy(b)
    fb = KaldiFbank()
    feats, frames = fb(batch, torch.tensor([12000, 20000]))
    single, n = fb(torch.from_numpy(a))
    assert frames[0] == n[0] == 73
    torch.testing.assert_close(feats[0, :73], single[0], atol=1e-4, rtol=1e-4)
    assert torch.all(feats[0, 73:] == 0)
    torch.testing.assert_close(feats[0, :73].mean(0), torch.zeros(80), atol=1e-4, rtol=0)
