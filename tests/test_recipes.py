"""Every recipe in recipes/ resolves and validates; a mistyped key anywhere is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from speakerverify.errors import RecipeError
from speakerverify.train.loop import resolve_recipe
from speakerverify.train.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_there_are_recipes() -> None:
    assert len(RECIPES) >= 5


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_resolves_and_validates(path: Path) -> None:
    recipe = resolve_recipe(path)
    assert recipe["task"] in ("embedding", "pairs") and recipe["epochs"] >= 1


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
@pytest.mark.parametrize("typo", ["export.asnrom=false", "data.manifst=x.csv", "optim.lrr=0.1", "epoch=3",
                                  "model.parms={}"])
def test_a_mistyped_key_is_one_line_naming_it(path: Path, typo: str) -> None:
    key = typo.split("=")[0].split(".")[-1]
    with pytest.raises(RecipeError) as info:
        resolve_recipe(path, [typo])
    message = str(info.value)
    assert key in message and "\n" not in message


def test_a_recipe_extends_another(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("task: embedding\nseed: 0\nepochs: 10\n"
                                        "optim: {name: adamw, lr: 0.001, grad_clip: 5.0}\n"
                                        "data: {crop_s: [0.5, 2.0], batches_per_epoch: 100}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "phase2.yaml").write_text("extends: ../base.yaml\nseed: 1\noptim: {lr: 0.0005}\n"
                                                  "data: {crop_s: [1.0, 3.0]}\n")
    recipe = load_recipe(tmp_path / "sub" / "phase2.yaml", ["epochs=4"])
    assert recipe == {"task": "embedding", "seed": 1, "epochs": 4,
                      "optim": {"name": "adamw", "lr": 0.0005, "grad_clip": 5.0},  # sections merge
                      "data": {"crop_s": [1.0, 3.0], "batches_per_epoch": 100}}  # lists replace
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(RecipeError, match="extend each other in a loop"):
        load_recipe(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(RecipeError, match="nowhere.yaml: no such recipe"):
        load_recipe(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: [a.yaml, b.yaml]\n")
    with pytest.raises(RecipeError, match="extends must name one recipe file"):
        load_recipe(tmp_path / "d.yaml")


def test_the_fast_models_second_phase_is_the_recipe_it_was_trained_with() -> None:
    # recipes/fast-fastnet-2.yaml says only what differs from the first phase; merged, it is the
    # recipe recorded with the shipped model (which adds the defaults the run filled in).
    root = Path(__file__).resolve().parents[1]
    recipe = load_recipe(root / "recipes" / "fast-fastnet-2.yaml")
    training = json.loads((root / "src/speakerverify/pretrained/fast/TRAINING.json").read_text())
    recorded = yaml.safe_load(training["recipe"])
    assert {k: recorded[k] for k in recipe} == recipe
