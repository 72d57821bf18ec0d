"""Embedding files, written atomically: ``.npz`` (this project's own) and Kaldi ``ark/scp``
(what WeSpeaker and Kaldi recipes read), through kaldiio.

* ``npz``: ``embeddings`` (N, D) float32, ``keys`` (utterance keys), ``files`` (the paths
  embedded), ``model`` (the model ident). Written to exactly the path given (``np.savez`` on a
  path would add ``.npz`` to a name without it).
* ``kaldi``: ``NAME.ark`` (binary float vectors by key) and ``NAME.scp`` (key -> ark offset);
  ``--out NAME``, ``NAME.ark`` or ``NAME.scp`` all name the pair.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speakerverify.atomic import write_atomic
from speakerverify.errors import DataError

FORMATS = ("npz", "kaldi")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DataError(f"--format must be npz or kaldi, got {fmt!r}")
    return fmt


def output_paths(out: Path, fmt: str) -> list[Path]:
    """The file(s) ``out`` names in format ``fmt``: itself for npz; the ark and scp for kaldi."""
    if check_format(fmt) == "npz":
        return [out]
    base = out.with_suffix("") if out.suffix in (".ark", ".scp") else out
    return [base.with_name(base.name + ".ark"), base.with_name(base.name + ".scp")]


def check_keys(keys: Sequence[str], source: str) -> None:
    """Kaldi keys are single tokens, and every format maps one key to one vector."""
    seen: set[str] = set()
    for key in keys:
        if not key or any(c.isspace() for c in key):
            raise DataError(f"{source}: utterance key {key!r} is empty or has white space; "
                            "give a KEY PATH first column")
        if key in seen:
            raise DataError(f"{source}: utterance key {key!r} appears twice")
        seen.add(key)


def write_embeddings(out: Path, fmt: str, keys: Sequence[str], embeddings: np.ndarray, model: str,
                     files: Sequence[str] | None = None) -> list[Path]:
    """Write ``embeddings`` (row i is ``keys[i]``) to ``out`` in ``fmt``; returns the paths written."""
    paths = output_paths(out, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez(buf, embeddings=embeddings, keys=np.array(list(keys)),
                 files=np.array(list(files if files is not None else keys)), model=model)
        return [write_atomic(paths[0], buf.getvalue())]
    import kaldiio

    ark, scp = paths
    buf, index = io.BytesIO(), io.StringIO()
    buf.name = str(ark)  # kaldiio writes the scp's offsets against the ark's name: the final one
    kaldiio.save_ark(buf, dict(zip(keys, embeddings, strict=True)), scp=index)
    write_atomic(ark, buf.getvalue())
    write_atomic(scp, index.getvalue())
    return paths


def read_embeddings(out: Path, fmt: str) -> tuple[list[str], np.ndarray]:
    """Keys and embeddings (N, D) of a file written by :func:`write_embeddings`, in its order."""
    if check_format(fmt) == "npz":
        with np.load(out) as z:
            return [str(k) for k in z["keys"]], np.asarray(z["embeddings"])
    import kaldiio

    items = list(kaldiio.load_ark(str(output_paths(out, fmt)[0])))
    return [k for k, _ in items], np.stack([np.asarray(v, dtype=np.float32) for _, v in items])
