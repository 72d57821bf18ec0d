import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ddp_helpers import torchrun_train
from speakerverify.embedding import load_model
from speakerverify.train.loop import TrainError, resolve_recipe, run_training
from speakerverify.train.optim import LrSchedule
from speakerverify.train.pairs import make_pairs
from speakerverify.train.recipe import RecipeError, apply_overrides, get, load_recipe, require

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
TRS = REPO.parent / "shared" / "data" / "seed-protocol" / "trs.pkl"
needs_data = pytest.mark.skipif(not TRS.is_file(), reason="needs ../shared/data/seed-protocol")


def tiny_recipe(tmp_path: Path, **changes) -> Path:
    recipe = {
        "task": "pairs", "seed": 3, "epochs": 3,
        "model": {"arch": "siamese-gru-seed", "params": {"hidden": 8}},
        "frontend": {"type": "seed-stft"},
        "data": {"train": str(TRS), "limit_speakers": 6, "val_speakers": 2},
        "batch_size": 64,
        "optim": {"name": "adam", "lr": 0.003},
        "schedule": {"name": "cosine", "warmup_epochs": 1},
        "select": {"metric": "val_eer", "mode": "min"},
    }
    recipe.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_pair_counts_follow_the_seed():
    groups = [list(range(10 * s, 10 * s + 10)) for s in range(5)]
    pairs = make_pairs(groups, np.random.default_rng(0))
    speaker = pairs[:, :2] // 10
    assert len(pairs) == 5 * 90
    for s in range(5):
        mine = pairs[speaker[:, 0] == s]
        assert (mine[:, 2] == 1).sum() == 45 and (mine[:, 2] == 0).sum() == 45
    pos, neg = pairs[pairs[:, 2] == 1], pairs[pairs[:, 2] == 0]
    assert (pos[:, 0] // 10 == pos[:, 1] // 10).all() and (pos[:, 0] != pos[:, 1]).all()
    assert (neg[:, 0] // 10 != neg[:, 1] // 10).all()
    assert len({tuple(p) for p in pos}) == 5 * 45
    np.testing.assert_array_equal(pairs, make_pairs(groups, np.random.default_rng(0)))
    assert not np.array_equal(pairs, make_pairs(groups, np.random.default_rng(1)))


def test_overrides_parse_yaml_and_nest(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("task: pairs\nepochs: 3\noptim: {name: adam, lr: 0.001}\n")
    recipe = load_recipe(path, ["optim.lr=0.01", "epochs=5", "data.train=x.pkl", "model.params={hidden: 4}",
                                "pairs.resample=true", "optim.betas=[0.8, 0.9]"])
    assert recipe["optim"] == {"name": "adam", "lr": 0.01, "betas": [0.8, 0.9]}
    assert recipe["epochs"] == 5 and recipe["data"]["train"] == "x.pkl"
    assert recipe["model"]["params"] == {"hidden": 4} and recipe["pairs"]["resample"] is True
    for bad in ["epochs", "=3", "optim..lr=1", "epochs.sub=1", "optim.lr=[1,"]:
        with pytest.raises(RecipeError):
            apply_overrides(recipe, [bad])


def test_recipe_errors_are_clear(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("epochs: 3\n")
    with pytest.raises(RecipeError, match="missing required key 'task'"):
        resolve_recipe(path)
    with pytest.raises(RecipeError, match="epochs must be int"):
        resolve_recipe(path, ["task=pairs", "epochs=three"])
    with pytest.raises(RecipeError, match="unknown key"):
        resolve_recipe(path, ["task=pairs", "select.metrc=val_eer"])
    with pytest.raises(RecipeError, match="no such recipe"):
        load_recipe(tmp_path / "missing.yaml")
    path.write_text("- a list\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(path)
    assert get({"a": {"b": 2}}, "a.b", kind=float) == 2
    with pytest.raises(RecipeError, match="must be set"):
        require({"a": None}, "a")


def test_schedules():
    cos = LrSchedule({"name": "cosine", "warmup_epochs": 2, "min_lr": 0.0}, 1.0, 10)
    assert cos.lr_at(1.0) == pytest.approx(0.5, abs=1e-3)
    assert cos.lr_at(2.0) == pytest.approx(1.0)
    assert cos.lr_at(6.0) == pytest.approx(0.5)
    assert cos.lr_at(10.0) == pytest.approx(0.0, abs=1e-12)
    step = LrSchedule({"name": "step", "step_epochs": 3, "gamma": 0.1}, 1.0, 10)
    assert [step.lr_at(e) for e in (0, 2.9, 3, 6)] == pytest.approx([1, 1, 0.1, 0.01])
    with pytest.raises(RecipeError):
        LrSchedule({"name": "linear"}, 1.0, 10)


@needs_data
def test_run_dir_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(TrainError, match="not empty"):
        run_training(tiny_recipe(tmp_path), out)
    with pytest.raises(TrainError, match="nothing to resume"):
        run_training(tiny_recipe(tmp_path), out, resume=True)
    with pytest.raises(RecipeError, match="test set"):
        run_training(tiny_recipe(tmp_path, data={"train": str(TRS.with_name("tes.pkl"))}), tmp_path / "r2")


class Interrupt(Exception):
    pass


def _stop_after_first(epoch: int, _metrics: dict) -> None:
    if epoch == 1:
        raise Interrupt


@needs_data
def test_resume_matches_an_uninterrupted_run(tmp_path):
    recipe = tiny_recipe(tmp_path)
    full = run_training(recipe, tmp_path / "full")
    part = tmp_path / "part"
    with pytest.raises(Interrupt):
        run_training(recipe, part, on_epoch_end=_stop_after_first)
    assert len((part / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (part / "model").exists()
    with pytest.raises(TrainError, match="differs"):
        run_training(recipe, part, ["optim.lr=0.1"], resume=True)
    run_training(recipe, part, resume=True)

    def lines(run):
        return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]

    a, b = lines(full), lines(part)
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_eer"] == rb["val_eer"]
    wa = torch.load(full / "model" / "model.pt", weights_only=True)
    wb = torch.load(part / "model" / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    meta = json.loads((part / "meta.json").read_text())
    assert meta["resumed"][0]["epoch"] == 1 and meta["data_manifest_hash"]
    assert set(json.loads((full / "meta.json").read_text())) >= {
        "git_revision", "data_manifest_hash", "torch_version", "world_size", "start_time", "command_line"}
    bundle = load_model(full)
    assert bundle.two_branch and set(bundle.backend["thresholds"]) == {"eer", "sigmoid_half"}
    assert (full / "checkpoints" / "best.pt").is_file() and (full / "recipe.yaml").is_file()


@needs_data
def test_training_on_seed_clips_drives_the_loss_down(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=4, model={"arch": "siamese-gru-seed", "params": {"hidden": 32}},
                         data={"train": str(TRS), "limit_speakers": 12, "val_speakers": 2},
                         schedule={"name": "constant"}, optim={"name": "adam", "lr": 0.003}, batch_size=32)
    run = run_training(recipe, tmp_path / "run")
    losses = [json.loads(x)["train_loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.85 * losses[0] and losses == sorted(losses, reverse=True)


@pytest.mark.slow
@needs_data
def test_torchrun_two_processes(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=2, schedule={"name": "constant"})
    out = tmp_path / "ddp"
    torchrun_train(recipe, out, epochs=2, timeout=120)
    assert (out / "model" / "model.pt").is_file() and (out / "checkpoints" / "last.pt").is_file()
    single = run_training(recipe, tmp_path / "single")
    w1 = torch.load(single / "checkpoints" / "last.pt", weights_only=True)["model"]
    w2 = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-4, rtol=1e-4)


def test_cli_reports_one_line_errors(tmp_path, monkeypatch, capsys):
    from speakerverify import cli

    monkeypatch.setattr(sys, "argv", ["speakerverify", "train", str(tmp_path / "none.yaml"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no such recipe" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@needs_data
def test_cli_trains_with_overrides(tmp_path, monkeypatch, capsys):
    from speakerverify import cli

    out = tmp_path / "run"
    argv = ["speakerverify", "train", str(tiny_recipe(tmp_path)), "--out", str(out), "--set", "epochs=1",
            "--set", "model.params.hidden=4", "--set", "schedule.warmup_epochs=0", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code in (0, None)
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert recipe["epochs"] == 1 and recipe["model"]["params"]["hidden"] == 4
    assert recipe["optim"]["grad_clip"] is None and recipe["select"]["mode"] == "min"
    assert load_model(out).network.branch1.gru.hidden_size == 4
    assert f"run directory: {out}" in capsys.readouterr().out


@needs_data
def test_pairs_task_trains_the_same_network_as_a_speaker_classifier(tmp_path):
    """pairs.objective softmax (the claims' control): cross-entropy over the training speakers, the
    pair head fixed to sigmoid(cosine); exported and scored like any pairs model."""
    recipe = tiny_recipe(tmp_path, epochs=2, model={"arch": "siamese-gru", "params": {"hidden": 16}},
                         pairs={"objective": "softmax"}, schedule={"name": "constant"}, batch_size=16)
    run = run_training(recipe, tmp_path / "run")
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and "train_ce" in rows[0] and "val_eer" in rows[0]
    bundle = load_model(run)
    assert set(bundle.backend["thresholds"]) == {"eer", "sigmoid_half"}
    head = bundle.network.head.dense
    assert head.weight.item() == 1.0 and head.bias.item() == 0.0
    with pytest.raises(RecipeError, match="objective"):
        run_training(tiny_recipe(tmp_path, pairs={"objective": "triplet"}), tmp_path / "bad")
