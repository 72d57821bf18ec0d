"""``import-model`` (published checkpoints -> model directory) and ``export`` (ONNX);
registered by :func:`register`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from speakerverify.cli.common import JsonOpt, emit_json, out


def import_model(
    kind: Annotated[str, typer.Argument(help="Checkpoint format: speechbrain-ecapa or campplus.")],
    checkpoint: Annotated[Path, typer.Argument(help="SpeechBrain embedding_model.ckpt or 3D-Speaker CAM++ .pt")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    name: Annotated[str | None, typer.Option("--name", help="Model name (default: the format).")] = None,
    dev_trials: Annotated[Path | None, typer.Option(
        "--dev-trials", help="Development trial list to choose the cosine threshold on (never a test list).")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Folder the trial paths are relative to.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Map a published checkpoint onto a speakerverify architecture and write a model directory."""
    from speakerverify.importers import import_model as run

    summary = run(kind, checkpoint, out_dir, name=name, dev_trials=dev_trials, root=root)
    if json_:
        emit_json(summary)
        return
    thr = summary.get("thresholds", {}).get("eer")
    note = f", threshold {thr:.4f} from {dev_trials.name}" if thr is not None and dev_trials else \
        " (no threshold: pass --dev-trials to choose one)"
    out.print(f"wrote {summary['arch']} model to {summary['out']}{note}", highlight=False)


def export(
    model: Annotated[str, typer.Argument(help="Model directory, run directory or shipped model name.")],
    onnx: Annotated[Path | None, typer.Option("--onnx", help="ONNX file to write (default: MODEL/model.onnx).")] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default: the exporter's).")] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare onnxruntime with torch.")] = True,
    json_: JsonOpt = False,
) -> None:
    """Export front end + network to ONNX (dynamic batch and length; inputs wave, lengths)."""
    from speakerverify.embedding import load_model
    from speakerverify.embedding.onnx_export import export_onnx

    bundle = load_model(model)
    summary = export_onnx(bundle, onnx or bundle.onnx_path, opset=opset, check=check)
    if json_:
        emit_json(summary)
        return
    extra = (f"; onnxruntime vs torch: min cosine {summary['check_min_cosine']:.6f}"
             if "check_min_cosine" in summary else "")
    out.print(f"wrote {summary['onnx']} ({summary['size_mb']} MB, opset {summary['opset']}){extra}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="import-model")(import_model)
    app.command(name="export")(export)
