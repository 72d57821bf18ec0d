"""Embedding: a model directory (front end + network + back-end settings) turned into vectors.

* :mod:`~speakerverify.embedding.model_dir` -- the model-directory format (resolve, load, write);
* :mod:`~speakerverify.embedding.torch_embedder` -- the PyTorch engine;
* :mod:`~speakerverify.embedding.onnx_embedder` -- the onnxruntime engine;
* :mod:`~speakerverify.embedding.onnx_export` -- writes ``model.onnx`` (and checks it against torch);
* :mod:`~speakerverify.embedding.device` -- ``--device cpu|cuda|auto`` and mixed precision;
* :mod:`~speakerverify.embedding.outputs` -- embedding files: ``.npz`` and Kaldi ``ark/scp``.

:func:`make_embedder` picks the engine (``torch`` or ``onnx``) and the device.
"""

from __future__ import annotations

import os
from pathlib import Path

from speakerverify.embedding.device import pick_device
from speakerverify.embedding.model_dir import (
    DEFAULT_MODEL,
    PRETRAINED,
    ModelBundle,
    file_sha256,
    load_model,
    resolve_model_dir,
    shipped_models,
    write_model_dir,
)
from speakerverify.embedding.torch_embedder import TorchEmbedder, pad_batch
from speakerverify.errors import LaunchError, ModelError

ENGINES = ("torch", "onnx")

__all__ = ["DEFAULT_MODEL", "ENGINES", "PRETRAINED", "ModelBundle", "TorchEmbedder", "load_model", "make_embedder",
           "pad_batch", "resolve_model_dir", "shipped_models", "write_model_dir"]


def cached_onnx(bundle: ModelBundle) -> Path:
    """The ONNX graph of a model directory that ships none (a shipped model keeps only its float16
    ``model.pt`` to stay small): exported on first use into the user's cache
    (``$SPEAKERVERIFY_CACHE`` or ~/.cache/speakerverify/onnx), keyed by the weights' SHA-256, and
    reused after; written to a temporary name and renamed, so a crash never leaves half a file."""
    from speakerverify.embedding.onnx_export import export_onnx

    root = Path(os.environ.get("SPEAKERVERIFY_CACHE") or Path.home() / ".cache" / "speakerverify") / "onnx"
    path = root / f"{bundle.name}-{file_sha256(bundle.weights_path)[:16]}.onnx"
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            export_onnx(bundle, tmp)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def make_embedder(bundle: ModelBundle, engine: str = "torch", threads: int | None = None,
                  device: str = "cpu", local_rank: int = 0):
    """The inference engine ``engine`` (torch or onnx) over ``bundle`` on ``device`` (cpu, cuda or
    auto; the onnx engine runs on the CPU, so ``auto`` means cpu for it)."""
    if engine == "torch":
        return TorchEmbedder(bundle, threads, pick_device(device, local_rank))
    if engine == "onnx":
        if device == "cuda":
            raise LaunchError("the onnx engine runs on the CPU only: use --engine torch with --device cuda")
        pick_device(device)  # refuses a device name that does not exist
        from speakerverify.embedding.onnx_embedder import OnnxEmbedder  # onnxruntime loads only when asked for

        path = bundle.onnx_path if bundle.onnx_path.is_file() else cached_onnx(bundle)
        return OnnxEmbedder(bundle, threads, path)
    raise ModelError(f"unknown engine {engine!r}: use torch or onnx")
