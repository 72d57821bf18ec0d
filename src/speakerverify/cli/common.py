"""What every command group shares, defined once: consoles, errors, JSON output and options."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Shipped model name, model dir or run dir.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
EngineOpt = Annotated[str, typer.Option("--engine", help="Inference engine: torch or onnx.")]
#: The inference engine's old option name, still accepted (with a note) for ``--engine``.
BackendOpt = Annotated[str | None, typer.Option("--backend", hidden=True,
                                                help="Deprecated name of --engine.")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="Compute device: cpu (float32, the reference), cuda (float16 autocast) or auto.")]
FarOpt = Annotated[float | None, typer.Option("--far", help="Decide at this false-accept rate.")]
#: The default is speakerverify.audio.DEFAULT_MAX_AUDIO_S (not imported here: it pulls in numpy and
#: soundfile); tests/test_audio_bounds.py checks that every command's default is that value.
MaxAudioOpt = Annotated[float, typer.Option("--max-audio-s", min=1, help="Longest recording accepted, in seconds.")]
MAX_AUDIO_S = 600.0
# Help texts say "(default: ...)", not "[default: ...]": rich reads square brackets as markup and
# drops them, words and all.
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Speaker store: a SQLite file, or a postgresql://USER@HOST/DB URL (default: "
                    "$SPEAKERVERIFY_STORE or ~/.local/share/speakerverify/speakers.db).")]
KeyFileOpt = Annotated[Path | None, typer.Option(
    "--key-file", help="The store's encryption key file (default: $SPEAKERVERIFY_STORE_KEY_FILE, or the key "
                       "itself in $SPEAKERVERIFY_STORE_KEY; none: not encrypted).")]


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


def pick_engine(engine: str, backend: str | None) -> str:
    """``--engine``, or the deprecated ``--backend`` when that is what was given."""
    if backend is None:
        return engine
    err.print("[yellow]note:[/] --backend is deprecated: the inference engine is --engine", highlight=False)
    return backend
