"""Calibrated fusion of models with different front ends (models/fusion.py, features/stacked.py,
scoring/fusion.py, embedding/fusion_dir.py, scripts/make_fusion.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speakerverify.data import read_trials
from speakerverify.embedding import load_model, write_model_dir
from speakerverify.embedding.fusion_dir import write_fusion_dir
from speakerverify.errors import DataError
from speakerverify.features import build_frontend
from speakerverify.scoring import cosine
from speakerverify.scoring.fusion import alpha_from_weights, fit_fusion
from speakerverify.verifier import Verifier
from test_model_padding import SMALL, small_model

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)
MEMBERS = {"campplus": {"type": "kaldi-fbank"}, "ecapa-tdnn": {"type": "speechbrain-fbank"}}
ALPHA = [0.3, 0.7]


@pytest.fixture(scope="module")
def member_dirs(tmp_path_factory) -> list[Path]:
    """Two tiny random member models with different front ends."""
    root = tmp_path_factory.mktemp("members")
    dirs = []
    for arch, frontend in MEMBERS.items():
        d = root / arch
        write_model_dir(d, arch, SMALL[arch], frontend, small_model(arch).state_dict(), name=f"tiny-{arch}")
        dirs.append(d)
    return dirs


@pytest.fixture(scope="module")
def fusion_dir(member_dirs: list[Path], tmp_path_factory) -> Path:
    return write_fusion_dir(tmp_path_factory.mktemp("fusion") / "model", [load_model(d) for d in member_dirs], ALPHA)


@pytest.fixture(scope="module")
def clips(shared_data: Path) -> list[np.ndarray]:
    """Real clips of different lengths: two speakers, plus a 1-s crop."""
    trials = read_trials(shared_data / "trials/libri-train-clean-dev.txt")
    files = [trials[0].enroll, trials[0].test, trials[1].enroll]
    waves = [sf.read(shared_data / f, dtype="float32")[0] for f in files]
    return [*waves, waves[0][:16000 + 123]]


def test_stacked_frontend_keeps_each_members_frames() -> None:
    stacked = build_frontend({"type": "stacked", "members": list(MEMBERS.values())})
    wave = torch.randn(2, 16000 + 77) * 0.1
    lengths = torch.tensor([16000 + 77, 9000])
    feats, frames = stacked(wave, lengths)
    start = 0
    for config in MEMBERS.values():
        own, own_frames = build_frontend(config)(wave, lengths)
        dim = own.shape[-1]
        valid = feats[:, :, start + dim]
        assert torch.equal(valid.sum(1).long(), own_frames)
        torch.testing.assert_close(feats[:, :own.shape[1], start:start + dim], own)
        assert torch.all(feats[:, own.shape[1]:, start:start + dim + 1] == 0)
        start += dim + 1
    assert feats.shape[-1] == stacked.dim == start
    assert torch.equal(frames, torch.stack([build_frontend(c).num_frames(lengths) for c in MEMBERS.values()]).amax(0))


def test_fusion_cosine_is_alpha_weighted_member_cosines(member_dirs: list[Path], fusion_dir: Path,
                                                         clips: list[np.ndarray]) -> None:
    fused = Verifier(fusion_dir, threads=1)
    e = fused.embed_waves(clips)
    singles = np.concatenate([fused.embed_waves([c]) for c in clips])
    np.testing.assert_allclose(e, singles, atol=1e-5)  # a padded batch embeds as single clips
    members = [Verifier(d, threads=1).embed_waves(clips) for d in member_dirs]
    i, j = np.triu_indices(len(clips), 1)
    expected = sum(a * cosine(m[i], m[j]) for a, m in zip(ALPHA, members, strict=True))
    np.testing.assert_allclose(cosine(e[i], e[j]), expected, atol=1e-5)
    assert np.ptp(expected) > 0.01  # the clips are not all alike


def test_fit_fusion_recovers_a_known_weighting() -> None:
    rng = np.random.default_rng(0)
    n = 40000
    s = rng.normal(0.0, 1.0, (n, 2))
    dur = rng.uniform(1.0, 8.0, n)
    true_llr = 3.0 * s[:, 0] + 1.0 * s[:, 1] + 0.5 * np.log(dur) - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-true_llr))).astype(int)
    fit = fit_fusion(s, y, dur, p_target=float(y.mean()))
    np.testing.assert_allclose(fit.alpha, [0.75, 0.25], atol=0.03)
    assert fit.quality == pytest.approx(0.5, abs=0.1)
    # one informative member and one that only adds noise: the informative one takes the weight
    noise = np.c_[s[:, 0] + 2.0 * (y - 0.5), rng.normal(0.0, 1.0, n)]
    fit = fit_fusion(noise, y, dur)
    assert fit.alpha[0] > 0.9 and sum(fit.alpha) == pytest.approx(1.0)
    llr = fit.llr(noise, dur)
    assert np.mean(llr[y == 1]) > 0 > np.mean(llr[y == 0])


def test_alpha_clips_negative_weights() -> None:
    assert alpha_from_weights([3.0, -1.0, 1.0]) == [0.75, 0.0, 0.25]
    with pytest.raises(DataError):
        alpha_from_weights([-1.0, 0.0])


@pytest.mark.slow
def test_make_fusion_script_round_trip(member_dirs: list[Path], shared_data: Path, tmp_path: Path,
                                       clips: list[np.ndarray]) -> None:
    """make_fusion.py on a small dev list (with its short telephone crops) writes a model directory
    that loads, verifies and records its fit."""
    lines = (shared_data / "trials/libri-train-clean-dev.txt").read_text().splitlines()
    dev = tmp_path / "mini-dev.txt"
    dev.write_text("\n".join(lines[:24]) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data:\n  dev:\n    - {{trials: {dev}, root: {shared_data}, short_s: 1.0}}\n")
    out = tmp_path / "fusion"

    def make(out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "scripts/make_fusion.py"), *map(str, member_dirs), "--out",
                               str(out), "--recipe", str(recipe), "--cache-dir", str(tmp_path / "cache")],
                              capture_output=True, text=True,
                              env={"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"})

    run = make(out)
    assert run.returncode == 0, run.stderr
    bundle = load_model(out)
    record = bundle.config["fusion"]
    assert len(record["alpha"]) == 2 and sum(record["alpha"]) == pytest.approx(1.0)
    assert set(record["dev_eer_percent"]) == {"mini-dev", "mini-dev-short1s-tel"}
    assert "calibration" in bundle.backend and "eer" in bundle.backend["thresholds"]
    assert (out / "README.md").read_text().startswith("# fusion")
    v = Verifier(out, threads=1)
    result = v.verify(clips[0], clips[1])
    assert np.isfinite(result.llr)
    # a second run reuses every cached member embedding
    again = make(tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert load_model(tmp_path / "again").config["fusion"]["alpha"] == record["alpha"]


@pytest.mark.slow
def test_fusion_onnx_parity(fusion_dir: Path, clips: list[np.ndarray]) -> None:
    from speakerverify.embedding.onnx_embedder import OnnxEmbedder
    from speakerverify.embedding.onnx_export import export_onnx

    bundle = load_model(fusion_dir)
    summary = export_onnx(bundle, fusion_dir / "model.onnx")
    assert summary["check_min_cosine"] > 0.9999
    torch_e = Verifier(fusion_dir, threads=1).embed_waves(clips)
    onnx_e = OnnxEmbedder(load_model(fusion_dir), threads=1).embed_batch(clips)
    np.testing.assert_allclose(np.sum(torch_e * onnx_e, -1) / (np.linalg.norm(torch_e, axis=-1)
                                                               * np.linalg.norm(onnx_e, axis=-1)), 1.0, atol=1e-4)
