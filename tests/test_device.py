"""`--device`: one function picks the device for every command (embed, eval, verify, train); on a
machine without CUDA, `cuda` is one error line and `auto` is the CPU. Where CUDA is present, the GPU
(float16 autocast) embeddings are checked against the CPU's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from cli_helpers import one_line_error
from speakerverify.embedding.device import pick_device
from speakerverify.errors import LaunchError
from speakerverify.verifier import Verifier

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without CUDA")


@no_cuda
def test_pick_device_without_cuda():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(LaunchError, match="device cuda: no CUDA device is available"):
        pick_device("cuda")
    with pytest.raises(LaunchError, match="device must be auto, cpu or cuda, got 'gpu'"):
        pick_device("gpu")


@no_cuda
def test_auto_runs_on_the_cpu_and_matches_it(test_speaker_clips):
    clip = next(iter(test_speaker_clips.values()))[0]
    auto = Verifier(device="auto")
    assert auto.device == torch.device("cpu")
    np.testing.assert_array_equal(auto.embed(clip), Verifier(device="cpu").embed(clip))


@no_cuda
def test_every_command_refuses_cuda_in_one_line(test_speaker_clips, shared_data, tmp_path, monkeypatch, capsys):
    a, b = [str(p) for p in next(iter(test_speaker_clips.values()))[:2]]
    trials = tmp_path / "trials.txt"
    trials.write_text(f"1 {a} {b}\n")
    commands = [["verify", a, b, "--device", "cuda"],
                ["embed", a, "--out", str(tmp_path / "x.npz"), "--device", "cuda"],
                ["eval", str(trials), "--root", "/", "--device", "cuda"]]
    for args in commands:
        err = one_line_error(args, monkeypatch, capsys)
        assert "device cuda: no CUDA device is available" in err, (args, err)
    assert not (tmp_path / "x.npz").exists()
    err = one_line_error(["verify", a, b, "--device", "tpu"], monkeypatch, capsys)
    assert "device must be auto, cpu or cuda, got 'tpu'" in err
    err = one_line_error(["verify", a, b, "--engine", "onnx", "--device", "cuda"], monkeypatch, capsys)
    assert "onnx engine runs on the CPU only" in err


@no_cuda
def test_training_picks_its_device_the_same_way(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "task": "pairs", "epochs": 1, "model": {"arch": "siamese-gru-seed", "params": {"hidden": 8}},
        "frontend": {"type": "seed-stft"}, "data": {"train": str(tmp_path / "unused.pkl")},
        "select": {"metric": "val_eer", "mode": "min"}}))
    err = one_line_error(["train", str(recipe), "--out", str(tmp_path / "run"), "--set", "device=cuda"],
                          monkeypatch, capsys)
    assert "device cuda: no CUDA device is available" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_embeddings_follow_the_cpu_reference(test_speaker_clips):
    clips = [p for ps in list(test_speaker_clips.values())[:2] for p in ps[:3]]
    cpu, gpu = Verifier(device="cpu"), Verifier(device="cuda")
    a = np.stack([cpu.embed(c) for c in clips])
    b = np.stack([gpu.embed(c) for c in clips])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert gpu.device.type == "cuda" and b.dtype == np.float32 and cos.min() > 0.999, cos
    ra = cpu.score_embeddings(a[:1].repeat(len(a), 0), a)
    rb = gpu.score_embeddings(b[:1].repeat(len(b), 0), b)
    np.testing.assert_allclose(rb, ra, atol=0.01)
