"""CLI commands for the speaker store, API keys and the service.

``enroll``, ``speakers``, ``remove``, ``verify-speaker``, ``identify``, ``store reembed``,
``store check``, ``store settings``, ``store rekey``, ``store new-key``, ``store migrate`` and
``keys create/list/revoke``; registered by :func:`register` (``serve`` is in :mod:`.serve`). Every
command that opens a store takes ``--key-file`` (an encrypted store; ``migrate`` copies ciphertext
and needs none) and is recorded in the store's audit log as ``cli:<OS user>``.
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
    KeyFileOpt,
    MaxAudioOpt,
    ModelOpt,
    StoreOpt,
    emit_json,
    err,
    fail,
    out,
)

TopOpt = Annotated[int, typer.Option("--top", "-k", min=1, max=1000, help="Candidates to list.")]
#: The default named in the help is scoring.IDENTIFY_STRANGER_RATE (not imported here: it pulls in
#: numpy); tests/test_store_cli.py checks that the two agree.
StrangerRateOpt = Annotated[float | None, typer.Option(
    "--stranger-rate", help="Let in at most this share of unenrolled speakers (calibrated models; default 0.01).")]
ReplaceOpt = Annotated[bool, typer.Option("--replace", help="Replace the speaker's clips instead of adding.")]
KeepAudioOpt = Annotated[bool | None, typer.Option(
    "--keep-audio/--no-keep-audio", show_default=False,
    help="Keep the 16 kHz audio (FLAC) so the store can be re-embedded (default: the store's keep-audio "
         "setting, on unless `store settings --no-keep-audio` turned it off).")]
AdminOpt = Annotated[bool, typer.Option("--admin", help="May enroll and remove speakers.")]


def _store(store: str | None, model: str | None = None, keep_audio: bool | None = None,
           max_audio_s: float | None = None, key_file: Path | None = None):
    from speakerverify.store import SpeakerStore
    from speakerverify.store.audit import os_user

    return SpeakerStore(store, model=model, keep_audio=keep_audio, max_audio_s=max_audio_s, key_file=key_file,
                        actor=f"cli:{os_user()}")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def enroll(name: str, files: list[Path], store: StoreOpt = None, model: ModelOpt = None,
           replace: ReplaceOpt = False, keep_audio: KeepAudioOpt = None,
           json_: JsonOpt = False, max_audio_s: MaxAudioOpt = MAX_AUDIO_S, key_file: KeyFileOpt = None) -> None:
    """Enroll speaker NAME from one or more FILES (their embeddings are averaged; unusable and
    duplicate clips are skipped and listed)."""
    s = _store(store, model, keep_audio, max_audio_s, key_file)
    result = s.enroll(name, files, replace=replace)
    if json_:
        emit_json(result.to_dict())
        return
    for r in result.skipped:
        err.print(f"[yellow]skipped[/] {r['name']}: {r['reason']}", highlight=False, soft_wrap=True)
    for w in result.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    verb = "re-enrolled" if result.replaced else "enrolled"
    out.print(f"{verb} {result.name} from {len(result.enrolled)} clip(s) ({result.n_clips} in all; "
              f"model {result.model}) in {s.path}", highlight=False)


def speakers(store: StoreOpt = None, json_: JsonOpt = False, key_file: KeyFileOpt = None) -> None:
    """List enrolled speakers."""
    s = _store(store, key_file=key_file)
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


def remove(name: str, store: StoreOpt = None, key_file: KeyFileOpt = None) -> None:
    """Remove speaker NAME and its clips, and erase them from the store's file and its WAL."""
    s = _store(store, key_file=key_file)
    if not s.remove(name):
        fail(f"no enrolled speaker named {name!r} in {s.path}")
    out.print(f"removed {name} from {s.path}", highlight=False)


def verify_speaker(name: str, file: Path, store: StoreOpt = None, model: ModelOpt = None,
                   far: FarOpt = None, json_: JsonOpt = False, max_audio_s: MaxAudioOpt = MAX_AUDIO_S,
                   key_file: KeyFileOpt = None) -> None:
    """Is FILE speaker NAME? (`-` reads it from stdin.)"""
    s = _store(store, model, max_audio_s=max_audio_s, key_file=key_file)
    result = s.verify(name, file, far=far)
    if json_:
        emit_json(result.to_dict())
        return
    verdict = f"[green]is {name}[/]" if result.same_speaker else f"[red]is not {name}[/]"
    extra = f", probability {result.probability:.3f}" if result.probability is not None else ""
    out.print(f"{file.name} {verdict} (score {result.score:.3f}, threshold {result.threshold:.3f}{extra})",
              highlight=False)


def identify(file: Path, top: TopOpt = 5, store: StoreOpt = None, model: ModelOpt = None,
             far: FarOpt = None, stranger_rate: StrangerRateOpt = None, json_: JsonOpt = False,
             max_audio_s: MaxAudioOpt = MAX_AUDIO_S, key_file: KeyFileOpt = None) -> None:
    """Who is speaking in FILE (`-`: stdin)? Ranks enrolled speakers; `unknown` when none passes the threshold."""
    s = _store(store, model, max_audio_s=max_audio_s, key_file=key_file)
    result = s.identify(file, top=top, far=far, stranger_rate=stranger_rate)
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
def store_reembed(store: StoreOpt = None, model: ModelOpt = None, json_: JsonOpt = False,
                  key_file: KeyFileOpt = None) -> None:
    """Recompute every embedding with MODEL (default: the shipped default) from the kept audio."""
    s = _store(store, model, key_file=key_file)
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
def store_check(store: StoreOpt = None, key_file: KeyFileOpt = None) -> None:
    """Check the store: SQLite's integrity check of every page, every speaker complete, every
    vector sound (decrypts, finite, non-zero, the model's dimension). One line per problem; exit 1."""
    s = _store(store, key_file=key_file)
    problems = s.check_integrity()
    if problems:
        for p in problems:
            err.print(f"[red]problem:[/] {p}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"{s.path}: ok ({len(s)} speakers, model {s.model}"
              f"{', encrypted' if s.encrypted else ''})", highlight=False)


@store_app.command("settings")
def store_settings(store: StoreOpt = None, key_file: KeyFileOpt = None, json_: JsonOpt = False,
                   keep_audio: Annotated[bool | None, typer.Option(
                       "--keep-audio/--no-keep-audio", show_default=False,
                       help="Turn keeping enrollment audio on or off; off erases all kept audio now.")] = None) -> None:
    """Show the store's settings (schema, model, keep-audio, encrypted), or change keep-audio."""
    s = _store(store, key_file=key_file)
    if keep_audio is not None:
        erased = s.set_keep_audio(keep_audio)
        err.print(f"keep-audio is now {'on' if keep_audio else 'off'}"
                  + (f"; erased the audio of {erased} clip(s)" if erased else ""), highlight=False)
    settings = s.settings()
    if json_:
        emit_json(settings)
        return
    for k, v in settings.items():
        out.print(f"{k}: {v}", highlight=False)


@store_app.command("new-key")
def store_new_key(file: Path) -> None:
    """Write a new random 256-bit store key to FILE (created 0600; never overwrites)."""
    from speakerverify.store.crypto import write_key_file

    out.print(f"wrote a new store key to {write_key_file(file)}; keep it safe: without it an encrypted "
              "store cannot be read", highlight=False)


@store_app.command("rekey")
def store_rekey(new_key_file: Annotated[Path | None, typer.Option(
                    "--new-key-file", help="Encrypt under the key in this file.")] = None,
                decrypt: Annotated[bool, typer.Option("--decrypt", help="Store in the clear instead.")] = False,
                store: StoreOpt = None, key_file: KeyFileOpt = None) -> None:
    """Re-encrypt every embedding and kept clip under a new key in one transaction (also encrypts
    a plaintext store, opened without a key); the old ciphertext is erased from the file."""
    from speakerverify.store.crypto import read_key_file

    if (new_key_file is None) == (not decrypt):
        fail("give --new-key-file FILE or --decrypt")
    s = _store(store, key_file=key_file)
    n = s.rekey(None if decrypt else read_key_file(new_key_file))
    state = "stored in the clear" if decrypt else f"encrypted under {new_key_file}"
    out.print(f"{s.path}: {n} blobs now {state}", highlight=False)


@store_app.command("migrate")
def store_migrate(source: Annotated[str, typer.Argument(
                      metavar="SRC", help="The store to copy: a path or postgresql:// URL.")],
                  destination: Annotated[str, typer.Argument(
                      metavar="DST", help="An empty store to copy it into (created when missing).")],
                  json_: JsonOpt = False) -> None:
    """Copy every speaker, clip, API key, audit record and setting of SRC into the empty store DST
    (SQLite to PostgreSQL or back) in one transaction, keeping ids, then compare the two. Encrypted
    stores are copied as ciphertext: DST opens with the same key file. SRC is left as it is."""
    from speakerverify.store.audit import os_user
    from speakerverify.store.migrate import migrate

    result = migrate(source, destination, actor=f"cli:{os_user()}",
                     progress=None if json_ else (lambda t, n: err.print(f"copied {n} {t}", highlight=False)))
    if json_:
        emit_json(result.to_dict())
        return
    labels = {"api_keys": "API keys", "audit": "audit records"}
    out.print(f"migrated {result.source} into {result.destination}: "
              + ", ".join(f"{n} {labels.get(t, t)}" for t, n in result.rows.items())
              + "; every row compared equal", highlight=False, soft_wrap=True)


keys_app = typer.Typer(no_args_is_help=True, help="API keys for the REST service.")


@keys_app.command("create")
def keys_create(name: str, admin: AdminOpt = False, store: StoreOpt = None, key_file: KeyFileOpt = None) -> None:
    """Create an API key called NAME; the key is printed once (only its hash is stored)."""
    from speakerverify.store.keys import create_key

    s = _store(store, key_file=key_file)
    key = create_key(s, name, admin=admin)
    err.print(f"created {'admin ' if admin else ''}key {name!r} in {s.path}; it is shown only now:", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list(store: StoreOpt = None, json_: JsonOpt = False, key_file: KeyFileOpt = None) -> None:
    """List API key names and roles (never the keys)."""
    from speakerverify.store.keys import list_keys

    rows = list_keys(_store(store, key_file=key_file))
    if json_:
        emit_json({"keys": rows})
        return
    for r in rows:
        out.print(f"{r['name']}\t{'admin' if r['admin'] else 'user'}\t{_when(r['created'])}", highlight=False)


@keys_app.command("revoke")
def keys_revoke(name: str, store: StoreOpt = None, key_file: KeyFileOpt = None) -> None:
    """Delete the API key called NAME."""
    from speakerverify.store.keys import revoke_key

    if not revoke_key(_store(store, key_file=key_file), name):
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
