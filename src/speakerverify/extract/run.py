"""One rank's share of ``embed --list``: embed each of its unfinished shards, write the shard's
vectors and then its manifest (both atomically), with a progress bar labelled by rank on stderr."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from speakerverify.atomic import write_atomic
from speakerverify.embedding.outputs import check_format, write_embeddings
from speakerverify.evaluate import embed_summary, iter_embeddings
from speakerverify.extract.filelist import read_file_list
from speakerverify.extract.shards import ShardPlan, is_finished, manifest_path, rank_shards, shard_output
from speakerverify.ranks import DistInfo, from_env, threads_per_process
from speakerverify.verifier import Verifier


def extract_shards(file_list: Path, out_dir: Path, *, model: str | None = None, engine: str = "torch",
                   device: str = "cpu", fmt: str = "npz", shard_size: int, threads: int | None = None,
                   max_audio_s: float, progress: bool = True, info: DistInfo | None = None) -> dict:
    """Embed this rank's unfinished shards of ``file_list`` into ``out_dir``; returns its summary."""
    info = info or from_env()
    files = read_file_list(file_list)
    threads = threads or threads_per_process(info)
    verifier = Verifier(model, engine=engine, threads=threads, max_audio_s=max_audio_s, device=device,
                        local_rank=info.local_rank)
    plan = ShardPlan(files, shard_size, verifier.model_ident, check_format(fmt))
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = rank_shards(plan.n_shards, info.rank, info.world_size)
    todo = [i for i in mine if not is_finished(out_dir, i, plan)]
    t0, n_files, audio_s = time.perf_counter(), 0, 0.0
    label = f"rank {info.rank}/{info.world_size}"
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), disable=not progress)
    with bar:
        task = bar.add_task(label, total=sum(len(plan.entries(i)[0]) for i in todo))
        for i in todo:
            keys, paths = plan.entries(i)
            embs, seconds = [], []
            for emb, secs in iter_embeddings(verifier, [Path(p) for p in paths]):
                embs.append(emb)
                seconds.append(secs)
                bar.advance(task)
            written = write_embeddings(shard_output(out_dir, i, plan.fmt), plan.fmt, keys, np.stack(embs),
                                       plan.model, files=paths)
            manifest = {**plan.header(), "shard": i, "keys": keys, "files": paths, "dim": int(embs[0].shape[0]),
                        "audio_s": round(sum(seconds), 3), "written": [p.name for p in written],
                        "rank": info.rank, "world_size": info.world_size, "device": str(verifier.device),
                        "engine": verifier.engine}
            write_atomic(manifest_path(out_dir, i), json.dumps(manifest, indent=1) + "\n")
            n_files += len(keys)
            audio_s += sum(seconds)
    summary = embed_summary(verifier, n_files, audio_s, time.perf_counter() - t0)
    return {**summary, "rank": info.rank, "world_size": info.world_size, "threads": threads,
            "n_shards": plan.n_shards, "shards_done": len(todo), "shards_skipped": len(mine) - len(todo),
            "out": str(out_dir)}
