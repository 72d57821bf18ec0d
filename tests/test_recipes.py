"""Every recipe in recipes/ resolves and validates; a mistyped key anywhere is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from speakerverify.errors import RecipeError
from speakerverify.train.loop import resolve_recipe

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
