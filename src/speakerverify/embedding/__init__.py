"""Embedding: a model directory (front end + network + back-end settings) turned into vectors.

* :mod:`~speakerverify.embedding.model_dir` -- the model-directory format (resolve, load, write);
* :mod:`~speakerverify.embedding.torch_embedder` -- the PyTorch engine;
* :mod:`~speakerverify.embedding.onnx_embedder` -- the onnxruntime engine;
* :mod:`~speakerverify.embedding.onnx_export` -- writes ``model.onnx`` (and checks it against torch).

:func:`make_embedder` picks the engine (``torch`` or ``onnx``).
"""

from __future__ import annotations

from speakerverify.embedding.model_dir import (
    DEFAULT_MODEL,
    PRETRAINED,
    ModelBundle,
    load_model,
    resolve_model_dir,
    shipped_models,
    write_model_dir,
)
from speakerverify.embedding.torch_embedder import TorchEmbedder, pad_batch
from speakerverify.errors import ModelError

ENGINES = ("torch", "onnx")

__all__ = ["DEFAULT_MODEL", "ENGINES", "PRETRAINED", "ModelBundle", "TorchEmbedder", "load_model", "make_embedder",
           "pad_batch", "resolve_model_dir", "shipped_models", "write_model_dir"]


def make_embedder(bundle: ModelBundle, engine: str = "torch", threads: int | None = None):
    """The inference engine ``engine`` (torch or onnx) over ``bundle``."""
    if engine == "torch":
        return TorchEmbedder(bundle, threads)
    if engine == "onnx":
        from speakerverify.embedding.onnx_embedder import OnnxEmbedder  # onnxruntime loads only when asked for

        return OnnxEmbedder(bundle, threads)
    raise ModelError(f"unknown engine {engine!r}: use torch or onnx")
