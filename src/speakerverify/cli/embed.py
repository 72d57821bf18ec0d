"""``embed``: recordings to embedding vectors, in three modes.

* ``embed FILES... --out x.npz``: one process, one file (as always);
* ``embed --list FILES.txt --out DIR``: sharded batch extraction; runs unchanged under
  ``torchrun --nproc_per_node N [--nnodes ...] -m speakerverify embed ...`` and resumes when run
  again (see :mod:`speakerverify.extract`);
* ``embed --merge DIR --out FILE``: the shards of DIR joined in list order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from speakerverify.cli.common import (
    MAX_AUDIO_S,
    BackendOpt,
    DeviceOpt,
    EngineOpt,
    JsonOpt,
    MaxAudioOpt,
    ModelOpt,
    emit_json,
    fail,
    out,
    pick_engine,
)

#: speakerverify.extract.shards.SHARD_SIZE (not imported here: it would load numpy and torch for --help).
SHARD_SIZE = 256


def embed(
    out_path: Annotated[Path, typer.Option(
        "--out", help="Output file (FILES, --merge) or folder of shards (--list).")],
    files: Annotated[list[Path] | None, typer.Argument(help="Recordings to embed into one file.")] = None,
    file_list: Annotated[Path | None, typer.Option(
        "--list", help="File list (PATH or KEY PATH lines) to embed in shards into the --out folder.")] = None,
    merge: Annotated[Path | None, typer.Option(
        "--merge", help="Join the shards of this `embed --list` folder into the --out file.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Output format: npz or kaldi (ark + scp).")] = "npz",
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Files per shard (--list).")] = SHARD_SIZE,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="CPU threads per process [--list default: cores / processes on the node].")] = None,
    model: ModelOpt = None, json_: JsonOpt = False, engine: EngineOpt = "torch",
    backend: BackendOpt = None, max_audio_s: MaxAudioOpt = MAX_AUDIO_S, device: DeviceOpt = "cpu",
) -> None:
    """Embed FILES (or a --list, in shards, under torchrun too) into .npz or Kaldi ark/scp; --merge joins shards."""
    modes = [name for name, given in (("FILES", bool(files)), ("--list", file_list is not None),
                                      ("--merge", merge is not None)) if given]
    if len(modes) != 1:
        fail("embed takes one of FILES, --list FILE or --merge DIR" + (f", not {' and '.join(modes)}" if modes else ""))
    if merge is not None:
        from speakerverify.extract.merge import merge_shards

        summary = merge_shards(merge, out_path, fmt)
        if json_:
            emit_json(summary)
        else:
            out.print(f"merged {summary['n_shards']} shards, {summary['n_files']} embeddings, into "
                      f"{', '.join(summary['written'])}", highlight=False)
        return
    engine = pick_engine(engine, backend)
    if file_list is not None:
        from speakerverify.extract.run import extract_shards

        summary = extract_shards(file_list, out_path, model=model, engine=engine, device=device, fmt=fmt,
                                 shard_size=shard_size, threads=threads, max_audio_s=max_audio_s, progress=not json_)
        if json_:
            emit_json(summary)
        else:
            out.print(f"rank {summary['rank']}/{summary['world_size']}: {summary['n_files']} embeddings in "
                      f"{summary['shards_done']} shards ({summary['shards_skipped']} already done, "
                      f"{summary['n_shards']} in all) in {out_path}", highlight=False)
        return
    from speakerverify.evaluate import embed_files

    summary = embed_files(files or [], out_path, model=model, engine=engine, progress=not json_,
                          max_audio_s=max_audio_s, device=device, fmt=fmt, threads=threads)
    if json_:
        emit_json(summary)
    else:
        out.print(f"wrote {summary['n_files']} embeddings to {', '.join(summary['written'])} "
                  f"(rtf {summary['rtf']:.4f})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(embed)
