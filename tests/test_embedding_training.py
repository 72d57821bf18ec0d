"""The embedding task end to end on a tiny real-speech run: train, export, load, verify."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from ddp_helpers import torchrun_train
from speakerverify.train.loop import run_training
from speakerverify.verifier import Verifier


@pytest.fixture()
def tiny_recipe(tmp_path, shared_data):
    trials = (shared_data / "trials" / "libri-train-clean-dev.txt").read_text().splitlines()
    pos = [t for t in trials if t.startswith("1")][:6]
    neg = [t for t in trials if t.startswith("0")][:6]
    dev = tmp_path / "dev.txt"
    dev.write_text("\n".join(pos + neg) + "\n")
    recipe = {
        "task": "embedding", "seed": 0, "epochs": 2, "batch_size": 8,
        "data": {"manifest": str(shared_data / "corpora/libri-train-clean/manifest.csv"),
                 "dev_trials": str(dev), "dev_root": str(shared_data), "crop_s": [0.5, 1.0],
                 "batches_per_epoch": 3, "max_speakers": 6},
        "model": {"arch": "fastnet", "params": {"channels": 32, "mfa_channels": 64, "attention": 16,
                                                "embed_dim": 32, "dilations": [1, 2]}},
        "loss": {"head": "aam", "margin": 0.2, "scale": 30, "warmup_epochs": 2},
        "augment": {"p_reverb": 0.5, "n_rooms": 3, "p_telephone": 0.5},
        "optim": {"name": "adamw", "lr": 0.002, "grad_clip": 5.0},
        "select": {"metric": "val_mean_eer", "mode": "min"},
        "export": {"name": "tiny", "version": "0", "far": [0.1], "asnorm": True, "top_k": 5},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_train_export_and_verify(tiny_recipe, tmp_path, test_speaker_clips):
    run = run_training(tiny_recipe, tmp_path / "run")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and "val_mean_eer" in lines[-1] and "train_ce" in lines[-1]
    backend = json.loads((run / "model" / "backend.json").read_text())
    assert {"calibration", "thresholds"} <= set(backend) and "0.1" in backend["thresholds"]["far"]
    v = Verifier(run)
    a, b = list(test_speaker_clips.values())[0][:2]
    result = v.verify(a, b).to_dict()
    assert set(result) >= {"score", "same_speaker", "threshold", "model", "llr", "probability"}
    assert 0.0 <= result["probability"] <= 1.0 and result["model"] == v.model_ident
    assert result["model"].startswith("tiny@")  # name@version, as every command reports it
    assert np.isfinite(result["llr"])


@pytest.mark.slow
def test_embedding_task_under_torchrun(tiny_recipe, tmp_path):
    """The embedding task (AAM + augmentation, dev back end) with DistributedDataParallel on two
    CPU processes: every rank ends with the same weights, rank 0 exports a usable model."""
    out = tmp_path / "ddp"
    torchrun_train(tiny_recipe, out, epochs=2)
    backend = json.loads((out / "model" / "backend.json").read_text())
    assert {"calibration", "thresholds"} <= set(backend)
    assert Verifier(out).embed_waves([np.zeros(8000, np.float32) + 0.01]).shape == (1, 32)


def test_bf16_mixed_precision_runs_the_network_only_in_bf16(tiny_recipe, tmp_path, monkeypatch):
    """`amp: bf16` (what `auto` picks on a bf16 GPU, and runnable on a CPU): the network's layers run
    in bfloat16 while the front end's features and the head's inputs stay float32; the run trains,
    records its precision and exports float32 weights."""
    from speakerverify.models.fastnet import FastNet
    from speakerverify.train.embedding import EmbeddingTask

    seen: dict[str, set] = {"net_out": set(), "feats": set(), "head_in": set()}
    net_forward, task_head = FastNet.forward, EmbeddingTask.__init__

    def spy_forward(self, feats, frames):
        seen["feats"].add(feats.dtype)
        out = net_forward(self, feats, frames)
        seen["net_out"].add(out.dtype)
        return out

    def spy_init(self, *args, **kwargs):
        task_head(self, *args, **kwargs)
        head_forward = self.head.forward
        self.head.forward = lambda emb, labels: (seen["head_in"].add(emb.dtype), head_forward(emb, labels))[1]

    monkeypatch.setattr(FastNet, "forward", spy_forward)
    monkeypatch.setattr(EmbeddingTask, "__init__", spy_init)
    run = run_training(tiny_recipe, tmp_path / "run", ["amp=bf16", "epochs=1"])
    assert seen["net_out"] >= {torch.bfloat16}, seen  # training steps (validation runs in float32)
    assert seen["feats"] == {torch.float32} and seen["head_in"] == {torch.float32}, seen
    assert json.loads((run / "meta.json").read_text())["amp"] == "bfloat16"
    assert all(v.dtype == torch.float32 for v in torch.load(run / "checkpoints" / "best.pt")["model"].values()
               if v.is_floating_point())
    assert np.isfinite(json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"])


def test_mixed_precision_setting_is_checked(tiny_recipe, tmp_path):
    from speakerverify.embedding.device import training_precision
    from speakerverify.errors import LaunchError, RecipeError

    cpu = torch.device("cpu")
    assert training_precision("auto", cpu) is None and training_precision("off", cpu) is None
    assert training_precision("bf16", cpu) == torch.bfloat16
    with pytest.raises(LaunchError, match="amp fp16 needs a CUDA device"):
        training_precision("fp16", cpu)
    with pytest.raises(RecipeError, match="amp must be one of auto, off, bf16, fp16, got 'half'"):
        run_training(tiny_recipe, tmp_path / "run", ["amp=half"])
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_uses_mixed_precision(tiny_recipe, tmp_path):
    run = run_training(tiny_recipe, tmp_path / "run", ["device=cuda", "epochs=1"])
    meta = json.loads((run / "meta.json").read_text())
    assert meta["device"].startswith("cuda") and meta["amp"] in ("bfloat16", "float16")
    assert np.isfinite(json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"])


def test_fixed_batchnorm_keeps_the_loaded_statistics(tiny_recipe, tmp_path):
    """`model.batchnorm: fixed` (fine-tuning a pretrained network on little data): started from a
    model directory, the weights train while every BatchNorm keeps the running statistics it was
    loaded with; by default (`train`) they move."""
    def state(run):
        return torch.load(run / "checkpoints" / "best.pt")["model"]

    def stats(sd):
        return {k: v for k, v in sd.items() if k.endswith(("running_mean", "running_var"))}

    pretrained = run_training(tiny_recipe, tmp_path / "pretrained", ["epochs=1"])
    init = [f"model.init={pretrained / 'model'}", "epochs=1", "seed=1"]
    fixed = state(run_training(tiny_recipe, tmp_path / "fixed", [*init, "model.batchnorm=fixed"]))
    moving = state(run_training(tiny_recipe, tmp_path / "moving", init))
    start = state(pretrained)
    assert stats(start) and stats(fixed).keys() == stats(start).keys()
    for key, value in stats(fixed).items():
        assert torch.equal(value, start[key]), key
    assert any(not torch.allclose(moving[k], start[k], atol=1e-3) for k in stats(start))
    weights = [k for k, v in start.items() if k.endswith("weight") and v.dim() > 1]
    assert all(not torch.allclose(fixed[k], start[k]) for k in weights)


def test_batchnorm_setting_is_checked(tiny_recipe, tmp_path):
    from speakerverify.errors import RecipeError

    with pytest.raises(RecipeError, match="model.batchnorm must be 'train' or 'fixed', not 'frozen'"):
        run_training(tiny_recipe, tmp_path / "run", ["model.batchnorm=frozen"])
