"""``embed --merge DIR --out FILE``: every shard of an ``embed --list`` folder, joined in list
order into one ``.npz`` or Kaldi ``ark/scp``, after checking that none is missing and that all come
from one list and one model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speakerverify.embedding.outputs import read_embeddings, write_embeddings
from speakerverify.errors import DataError
from speakerverify.extract.shards import check_same_plan, manifest_path, read_manifest, shard_output


def merge_shards(out_dir: Path, out: Path, fmt: str = "npz") -> dict:
    paths = sorted(out_dir.glob("shard-*.json"))
    if not paths:
        raise DataError(f"{out_dir}: no shard manifests (shard-*.json) here: not an `embed --list` output folder")
    manifests = {p: read_manifest(p) for p in paths}
    first = manifests[paths[0]]
    for p, m in manifests.items():
        check_same_plan(m, first, p)
    n_shards = int(first["n_shards"])
    found = {int(m["shard"]) for m in manifests.values()}
    missing = sorted(set(range(n_shards)) - found)
    if missing:
        shown = ", ".join(str(i) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"{out_dir}: {len(missing)} of {n_shards} shards are missing ({shown}); "
                        "run the same `embed --list` command again to finish them")
    keys: list[str] = []
    files: list[str] = []
    blocks: list[np.ndarray] = []
    for i in range(n_shards):
        m = read_manifest(manifest_path(out_dir, i))
        shard_keys, emb = read_embeddings(shard_output(out_dir, i, m["format"]), m["format"])
        if shard_keys != m["keys"]:
            raise DataError(f"{manifest_path(out_dir, i)}: its vectors do not match its manifest; "
                            "delete the shard's files and run `embed --list` again")
        keys += shard_keys
        files += m["files"]
        blocks.append(emb)
    embeddings = np.concatenate(blocks)
    written = write_embeddings(out, fmt, keys, embeddings, str(first["model"]), files=files)
    return {"n_files": len(keys), "n_shards": n_shards, "dim": int(embeddings.shape[1]), "model": first["model"],
            "format": fmt, "out": str(written[0]), "written": [str(p) for p in written]}
