"""CLI commands for the speaker store, API keys and the service.

``enroll``, ``speakers``, ``remove``, ``verify-speaker``, ``identify``, ``store reembed``,
``store check`` and ``keys create/list/revoke``; registered by :func:`register` (``serve`` is in
:mod:`.serve`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from speakerverify.cli.common import (
    MAX_AUDIO_S,
    FarOpt,
    JsonOpt,
    MaxAudioOpt,
    ModelOpt,
    StoreOpt,
    emit_json,
    err,
    fail,
    out,
)

TopOpt = Annotated[int, typer.Option("--top", "-k", min=1, max=1000, help="Candidates to list.")]
ReplaceOpt = Annotated[bool, typer.Option("--replace", help="Replace the speaker's clips instead of adding.")]
KeepAudioOpt = Annotated[bool, typer.Option(
    "--keep-audio/--no-keep-audio", help="Keep the 16 kHz audio (FLAC) so the store can be re-embedded.")]
AdminOpt = Annotated[bool, typer.Option("--admin", help="May enroll and remove speakers.")]


def _store(store: Path | None, model: str | None = None, keep_audio: bool = True,
           max_audio_s: float | None = None):
    from speakerverify.store import SpeakerStore

    return SpeakerStore(store, model=model, keep_audio=keep_audio, max_audio_s=max_audio_s)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def enroll(name: str, files: list[Path], store: StoreOpt = None, model: ModelOpt = None,
           replace: ReplaceOpt = False, keep_audio: KeepAudioOpt = True,
           json_: JsonOpt = False, max_audio_s: MaxAudioOpt = MAX_AUDIO_S) -> None:
    """Enroll speaker NAME from one or more FILES (their embeddings are averaged)."""
    s = _store(store, model, keep_audio, max_audio_s)
    result = s.enroll(name, files, replace=replace)
    if json_:
        emit_json(result.to_dict())
        return
    for r in result.rejected:
        err.print(f"[yellow]skipped[/] {r['file']}: {r['reason']}", highlight=False, soft_wrap=True)
    for w in result.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    verb = "re-enrolled" if result.replaced else "enrolled"
    out.print(f"{verb} {result.name} from {len(result.enrolled)} clip(s) ({result.n_clips} in all; "
              f"model {result.model}) in {s.path}", highlight=False)


def speakers(store: StoreOpt = None, json_: JsonOpt = False) -> None:
    """List enrolled speakers."""
    s = _store(store)
    rows = s.speakers()
    if json_:
        emit_json({"store": str(s.path), "model": s.model, "speakers": rows})
        return
    if not rows:
        out.print(f"no speakers enrolled in {s.path}", highlight=False)
        return
    table = Table(title=f"{len(rows)} speaker(s) in {s.path} (model {s.model})")
    for col in ("name", "clips", "seconds", "audio kept", "enrolled", "note"):
        table.add_column(col)
    for r in rows:
        note = f"stale ({r['model']}): re-enroll" if r["stale"] else ""
        table.add_row(r["name"], str(r["clips"]), f"{r['duration_s']:.1f}", "yes" if r["audio_kept"] else "no",
                      _when(r["created"]), note)
    out.print(table)


def remove(name: str, store: StoreOpt = None) -> None:
    """Remove speaker NAME and its clips."""
    s = _store(store)
    if not s.remove(name):
        fail(f"no enrolled speaker named {name!r} in {s.path}")
    out.print(f"removed {name} from {s.path}", highlight=False)


def verify_speaker(name: str, file: Path, store: StoreOpt = None, model: ModelOpt = None,
                   far: FarOpt = None, json_: JsonOpt = False, max_audio_s: MaxAudioOpt = MAX_AUDIO_S) -> None:
    """Is FILE speaker NAME? (`-` reads it from stdin.)"""
    s = _store(store, model, max_audio_s=max_audio_s)
    result = s.verify(name, file, far=far)
    if json_:
        emit_json(result.to_dict())
        return
    verdict = f"[green]is {name}[/]" if result.same_speaker else f"[red]is not {name}[/]"
    extra = f", probability {result.probability:.3f}" if result.probability is not None else ""
    out.print(f"{file.name} {verdict} (score {result.score:.3f}, threshold {result.threshold:.3f}{extra})",
              highlight=False)


def identify(file: Path, top: TopOpt = 5, store: StoreOpt = None, model: ModelOpt = None,
             far: FarOpt = None, json_: JsonOpt = False, max_audio_s: MaxAudioOpt = MAX_AUDIO_S) -> None:
    """Who is speaking in FILE (`-`: stdin)? Ranks enrolled speakers; `unknown` when none passes the threshold."""
    s = _store(store, model, max_audio_s=max_audio_s)
    result = s.identify(file, top=top, far=far)
    if json_:
        emit_json(result.to_dict())
        return
    who = result.speaker
    head = f"[green]{who}[/]" if who != "unknown" else "[yellow]unknown[/] (no enrolled speaker passes the threshold)"
    out.print(f"{file.name}: {head}", highlight=False)
    if result.candidates:
        title = f"top {len(result.candidates)} of {result.gallery} (threshold {result.threshold:.3f})"
        table = Table(title=title)
        table.add_column("rank")
        table.add_column("speaker")
        table.add_column("score")
        table.add_column("passes")
        for i, c in enumerate(result.candidates, 1):
            table.add_row(str(i), c.speaker, f"{c.score:.3f}", "yes" if c.same_speaker else "no")
        out.print(table)


store_app = typer.Typer(no_args_is_help=True, help="Maintain the speaker store.")


@store_app.command("reembed")
def store_reembed(store: StoreOpt = None, model: ModelOpt = None, json_: JsonOpt = False) -> None:
    """Recompute every embedding with MODEL (default: the shipped default) from the kept audio."""
    s = _store(store, model)
    result = s.reembed(progress=None if json_ else (lambda n: err.print(f"re-embedded {n}", highlight=False)))
    if json_:
        emit_json(result.to_dict())
        return
    out.print(f"store {s.path} now uses model {result.model}: {len(result.reembedded)} re-embedded, "
              f"{len(result.unchanged)} already current", highlight=False)
    if result.must_reenroll:
        err.print(f"[yellow]must re-enroll[/] (no kept audio): {', '.join(result.must_reenroll)}",
                  highlight=False, soft_wrap=True)


@store_app.command("check")
def store_check(store: StoreOpt = None) -> None:
    """Check the store's integrity (SQLite check and every speaker complete)."""
    s = _store(store)
    problems = s.check_integrity()
    if problems:
        for p in problems:
            err.print(f"[red]problem:[/] {p}", highlight=False)
        raise typer.Exit(1)
    out.print(f"{s.path}: ok ({len(s)} speakers, model {s.model})", highlight=False)


keys_app = typer.Typer(no_args_is_help=True, help="API keys for the REST service.")


@keys_app.command("create")
def keys_create(name: str, admin: AdminOpt = False, store: StoreOpt = None) -> None:
    """Create an API key called NAME; the key is printed once (only its hash is stored)."""
    from speakerverify.store.keys import create_key

    s = _store(store)
    key = create_key(s, name, admin=admin)
    err.print(f"created {'admin ' if admin else ''}key {name!r} in {s.path}; it is shown only now:", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list(store: StoreOpt = None, json_: JsonOpt = False) -> None:
    """List API key names and roles (never the keys)."""
    from speakerverify.store.keys import list_keys

    rows = list_keys(_store(store))
    if json_:
        emit_json({"keys": rows})
        return
    for r in rows:
        out.print(f"{r['name']}\t{'admin' if r['admin'] else 'user'}\t{_when(r['created'])}", highlight=False)


@keys_app.command("revoke")
def keys_revoke(name: str, store: StoreOpt = None) -> None:
    """Delete the API key called NAME."""
    from speakerverify.store.keys import revoke_key

    if not revoke_key(_store(store), name):
        fail(f"no key named {name!r}")
    out.print(f"revoked key {name!r}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(enroll)
    app.command()(speakers)
    app.command()(remove)
    app.command(name="verify-speaker")(verify_speaker)
    app.command()(identify)
    app.add_typer(store_app, name="store")
    app.add_typer(keys_app, name="keys")
