"""Shards: the list cut into fixed-size pieces, shard ``i`` = entries ``[i*size, (i+1)*size)``.

Rank ``r`` of ``N`` takes shards ``r, r+N, r+2N, ...``; the shards themselves do not depend on
``N``, so a run interrupted with one number of processes resumes with another. Shard ``i`` is
``DIR/shard-000i.npz`` (or ``.ark`` + ``.scp``) and ``DIR/shard-000i.json``, its manifest, written
last: a shard is finished exactly when its manifest exists. The manifest records the list's hash,
the model ident, the shard size and format (a later run or the merge refuses shards that differ),
and the shard's keys and files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakerverify.embedding.outputs import output_paths
from speakerverify.errors import DataError
from speakerverify.extract.filelist import FileList

#: Files per shard unless ``--shard-size`` says otherwise (a few minutes of CPU work per shard).
SHARD_SIZE = 256
MANIFEST_VERSION = 1
#: Manifest fields that must agree between the shards of one output folder (and a resumed run).
PLAN_FIELDS = ("list_sha256", "n_files", "shard_size", "n_shards", "model", "format")


@dataclass(frozen=True)
class ShardPlan:
    files: FileList
    shard_size: int
    model: str
    fmt: str

    @property
    def n_shards(self) -> int:
        return -(-len(self.files) // self.shard_size)

    def entries(self, i: int) -> tuple[list[str], list[str]]:
        """Keys and paths of shard ``i``."""
        lo, hi = i * self.shard_size, (i + 1) * self.shard_size
        return self.files.keys[lo:hi], self.files.paths[lo:hi]

    def header(self) -> dict[str, Any]:
        return {"version": MANIFEST_VERSION, "list": str(self.files.source), "list_sha256": self.files.sha256,
                "n_files": len(self.files), "shard_size": self.shard_size, "n_shards": self.n_shards,
                "model": self.model, "format": self.fmt}


def rank_shards(n_shards: int, rank: int, world_size: int) -> range:
    return range(rank, n_shards, world_size)


def shard_output(out_dir: Path, i: int, fmt: str) -> Path:
    """The name shard ``i``'s vectors are written under (see :func:`~speakerverify.embedding.outputs.output_paths`)."""
    return out_dir / (f"shard-{i:06d}.npz" if fmt == "npz" else f"shard-{i:06d}")


def manifest_path(out_dir: Path, i: int) -> Path:
    return out_dir / f"shard-{i:06d}.json"


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
        int(manifest["shard"])
        return manifest
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a readable shard manifest ({type(exc).__name__})") from None


def check_same_plan(manifest: dict[str, Any], expected: dict[str, Any], path: Path) -> None:
    """One line naming the first setting in which ``manifest`` differs from ``expected``."""
    for field in PLAN_FIELDS:
        if manifest.get(field) != expected.get(field):
            raise DataError(f"{path}: made with {field} {manifest.get(field)!r}, but this one has "
                            f"{expected.get(field)!r}; use the same settings or another output folder")


def is_finished(out_dir: Path, i: int, plan: ShardPlan) -> bool:
    """Whether shard ``i`` was finished by an earlier run (of this same plan: else one error line)."""
    path = manifest_path(out_dir, i)
    if not path.is_file():
        return False
    check_same_plan(read_manifest(path), plan.header(), path)
    return all(p.is_file() for p in output_paths(shard_output(out_dir, i, plan.fmt), plan.fmt))
