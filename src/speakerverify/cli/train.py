"""``speakerverify train RECIPE.yaml --out DIR [--set key=value ...] [--resume]``; registered by :func:`register`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        recipe: Annotated[Path, typer.Argument(help="YAML training recipe.")],
        out: Annotated[Path, typer.Option("--out", help="Run directory to create (or continue with --resume).")],
        overrides: Annotated[list[str] | None, typer.Option(
            "--set", help="Override a recipe value: key.sub=value (YAML value); repeatable.")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")]
        = False,
        threads: Annotated[int | None, typer.Option("--threads", help="CPU threads per process.")] = None,
    ) -> None:
        """Train a model from a recipe (runs unchanged under torchrun for several processes)."""
        import torch

        from speakerverify.train.distributed import from_env
        from speakerverify.train.loop import run_training

        if threads:
            torch.set_num_threads(threads)
        run_dir = run_training(recipe, out, overrides or [], resume)
        if from_env().is_main:
            typer.echo(f"run directory: {run_dir}")
