"""``verify``, ``eval`` and ``seed-eval``: 1:1 verification and evaluation (``embed`` is in :mod:`.embed`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from speakerverify.cli.common import (
    MAX_AUDIO_S,
    BackendOpt,
    DeviceOpt,
    EngineOpt,
    FarOpt,
    JsonOpt,
    MaxAudioOpt,
    ModelOpt,
    emit_json,
    out,
    pick_engine,
)


def verify(a: Path, b: Path, model: ModelOpt = None, json_: JsonOpt = False, far: FarOpt = None,
           engine: EngineOpt = "torch", backend: BackendOpt = None, max_audio_s: MaxAudioOpt = MAX_AUDIO_S,
           device: DeviceOpt = "cpu") -> None:
    """Do recordings A and B come from the same speaker? (`-` reads one of them from stdin.)"""
    from speakerverify.verifier import Verifier

    v = Verifier(model, engine=pick_engine(engine, backend), max_audio_s=max_audio_s, device=device)
    result = v.verify(a, b, far=far)
    if json_:
        emit_json(result.to_dict())
        return
    verdict = "[green]same speaker[/]" if result.same_speaker else "[red]different speakers[/]"
    extra = f", probability {result.probability:.3f}" if result.probability is not None else ""
    out.print(f"{a.name} vs {b.name}: {verdict} (score {result.score:.3f}, threshold "
              f"{result.threshold:.3f}{extra}; model {result.model})", highlight=False)


def eval_(trials: Path, root: Annotated[Path, typer.Option("--root", help="Folder the trial paths are relative to.")],
          model: ModelOpt = None, json_: JsonOpt = False,
          det: Annotated[Path | None, typer.Option("--det", help="Write a DET plot PNG.")] = None,
          scores_out: Annotated[Path | None, typer.Option("--scores", help="Write per-trial scores.")] = None,
          engine: EngineOpt = "torch", backend: BackendOpt = None, max_audio_s: MaxAudioOpt = MAX_AUDIO_S,
          device: DeviceOpt = "cpu") -> None:
    """Score a trial list (`label enroll test` lines) and report EER, minDCF, Cllr."""
    from speakerverify.evaluate import evaluate_trials
    from speakerverify.verifier import Verifier

    verifier = Verifier(model, engine=pick_engine(engine, backend), max_audio_s=max_audio_s, device=device)
    result = evaluate_trials(trials, root, model=model, det=det, scores_out=scores_out, progress=not json_,
                             verifier=verifier)
    if json_:
        emit_json(result)
    else:
        out.print(result)


def seed_eval(pkl: Path, pairs: Path, model: ModelOpt = None, json_: JsonOpt = False) -> None:
    """Score the seed protocol's fixed `label i j` pairs over a pickled clip array."""
    from speakerverify.evaluate import evaluate_seed_pairs

    result = evaluate_seed_pairs(pkl, pairs, model=model)
    if json_:
        emit_json(result)
    else:
        out.print(result)


def register(app: typer.Typer) -> None:
    app.command()(verify)
    app.command(name="eval")(eval_)
    app.command(name="seed-eval")(seed_eval)
