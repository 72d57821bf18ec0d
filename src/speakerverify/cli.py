"""The ``speakerverify`` command line (typer + rich).

Core commands live here; command groups from other modules register themselves through
``register(app)`` functions listed in ``_EXTENSIONS``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from speakerverify.errors import SpeakerVerifyError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Speaker verification: do these two recordings come from the same speaker?")
out = Console()
err = Console(stderr=True)

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Shipped model name, model dir or run dir.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="Inference backend: torch or onnx.")]


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


@app.command()
def verify(a: Path, b: Path, model: ModelOpt = None, json_: JsonOpt = False,
           far: Annotated[float | None, typer.Option("--far", help="Decide at this false-accept rate.")] = None,
           backend: BackendOpt = "torch") -> None:
    """Do recordings A and B come from the same speaker?"""
    from speakerverify.verifier import Verifier

    v = Verifier(model, backend=backend)
    try:
        result = v.verify(a, b, far=far)
    except ValueError as exc:
        fail(str(exc))
    if json_:
        emit_json(result)
        return
    verdict = "[green]same speaker[/]" if result["same_speaker"] else "[red]different speakers[/]"
    extra = f", probability {result['probability']:.3f}" if "probability" in result else ""
    out.print(f"{a.name} vs {b.name}: {verdict} (score {result['score']:.3f}, threshold "
              f"{result['threshold']:.3f}{extra}; model {result['model']})", highlight=False)


@app.command()
def embed(files: list[Path], out_path: Annotated[Path, typer.Option("--out", help="Output .npz")],
          model: ModelOpt = None, json_: JsonOpt = False, backend: BackendOpt = "torch") -> None:
    """Embed FILES into an .npz (keys: embeddings, files, model)."""
    from speakerverify.evaluate import embed_files

    summary = embed_files(files, out_path, model=model, backend=backend, progress=not json_)
    if json_:
        emit_json(summary)
    else:
        out.print(f"wrote {summary['n_files']} embeddings to {out_path} (rtf {summary['rtf']:.4f})")


@app.command(name="eval")
def eval_(trials: Path, root: Annotated[Path, typer.Option("--root", help="Folder the trial paths are relative to.")],
          model: ModelOpt = None, json_: JsonOpt = False,
          det: Annotated[Path | None, typer.Option("--det", help="Write a DET plot PNG.")] = None,
          scores_out: Annotated[Path | None, typer.Option("--scores", help="Write per-trial scores.")] = None,
          backend: BackendOpt = "torch") -> None:
    """Score a trial list (`label enroll test` lines) and report EER, minDCF, Cllr."""
    from speakerverify.evaluate import evaluate_trials

    result = evaluate_trials(trials, root, model=model, backend=backend, det=det, scores_out=scores_out,
                             progress=not json_)
    if json_:
        emit_json(result)
    else:
        out.print(result)


@app.command(name="seed-eval")
def seed_eval(pkl: Path, pairs: Path, model: ModelOpt = None, json_: JsonOpt = False) -> None:
    """Score the seed protocol's fixed `label i j` pairs over a pickled clip array."""
    from speakerverify.evaluate import evaluate_seed_pairs

    result = evaluate_seed_pairs(pkl, pairs, model=model)
    if json_:
        emit_json(result)
    else:
        out.print(result)


# Command groups defined elsewhere: (module, description). Each module has register(app).
_EXTENSIONS = [
    "speakerverify.train.cli",      # train
    "speakerverify.export_cli",     # export, import-model
    "speakerverify.store_cli",      # enroll, speakers, remove, verify-speaker, identify, store, keys, serve
]


def _register_extensions() -> None:
    for name in _EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # not written yet
            raise
        module.register(app)


_register_extensions()


def main() -> None:
    try:
        app()
    except SpeakerVerifyError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
