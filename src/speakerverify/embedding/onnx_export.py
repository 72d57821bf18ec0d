"""ONNX export: a model directory's front end + network as one graph for onnxruntime.

``export_onnx`` writes the graph :class:`~speakerverify.embedding.onnx_embedder.OnnxEmbedder` runs
(inputs, outputs and metadata are described there) and, with ``check``, compares onnxruntime with
torch on padded batches; a graph that disagrees is not written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speakerverify.embedding.model_dir import ModelBundle, file_sha256
from speakerverify.embedding.onnx_embedder import (
    INPUTS,
    META_IDENT,
    META_MIN_SAMPLES,
    META_SHA,
    MIN_SAMPLES,
    OnnxEmbedder,
    output_names,
)
from speakerverify.embedding.torch_embedder import TorchEmbedder
from speakerverify.errors import ModelError

#: ``export`` refuses a graph whose embeddings differ from torch's by more than this.
CHECK_MIN_COSINE = 0.999


class ExportGraph(nn.Module):
    """wave, lengths -> embedding[, embedding_second]: what the ONNX file computes."""

    def __init__(self, frontend: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.network = network
        self.two_branch = hasattr(network, "forward_second")

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor):
        feats, num_frames = self.frontend(wave, lengths)
        emb = self.network(feats, num_frames)
        if self.two_branch:
            return emb, self.network.forward_second(feats, num_frames)
        return emb


def export_onnx(bundle: ModelBundle, out: str | Path, opset: int | None = None, check: bool = True) -> dict[str, Any]:
    """Export ``bundle`` to ``out``; with ``check``, compare onnxruntime with torch on padded batches."""
    import onnx

    out = Path(out)
    graph = ExportGraph(bundle.frontend, bundle.network).eval()
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([48000, 30000])
    wave = torch.randn(2, 48000, generator=gen) * 0.1
    wave[1, 30000:] = 0
    dynamic = torch.export.Dim.DYNAMIC
    t0 = time.perf_counter()
    try:
        with _quiet():
            exported = torch.export.export(graph, (wave, lengths), strict=False,
                                           dynamic_shapes={"wave": {0: dynamic, 1: dynamic}, "lengths": {0: dynamic}})
            batch_sym, samples_sym = _wave_symbols(exported)
            min_samples = max(MIN_SAMPLES, int(exported.range_constraints[samples_sym].lower))
            program = torch.onnx.export(exported, (wave, lengths), dynamo=True, input_names=list(INPUTS),
                                        output_names=output_names(bundle), opset_version=opset, verbose=False)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 -- the exporter raises many types; report in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{bundle.directory}: ONNX export failed ({type(exc).__name__}: {first[:200]})") from None
    proto = program.model_proto
    _rename_dims(proto, {str(batch_sym): "batch", str(samples_sym): "samples"})
    meta = {META_IDENT: bundle.ident, META_MIN_SAMPLES: str(min_samples)}
    pt = bundle.weights_path
    if pt.is_file():
        meta[META_SHA] = file_sha256(pt)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(proto, str(tmp))
        tmp.replace(out)
    except OSError as exc:
        raise ModelError(f"{out}: cannot write ({exc.strerror or type(exc).__name__})") from None
    summary: dict[str, Any] = {"onnx": str(out), "export_s": round(time.perf_counter() - t0, 2),
                               "opset": int(proto.opset_import[0].version), "outputs": output_names(bundle),
                               "min_samples": min_samples, "size_mb": round(out.stat().st_size / 2**20, 2)}
    if check:
        summary.update(compare_with_torch(bundle, out))
        if not summary["check_min_cosine"] > CHECK_MIN_COSINE:
            out.unlink(missing_ok=True)
            raise ModelError(f"{bundle.directory}: the exported graph disagrees with torch (cosine "
                             f"{summary['check_min_cosine']:.6f} < {CHECK_MIN_COSINE}); nothing written")
    return summary


def _wave_symbols(exported: torch.export.ExportedProgram):
    """The symbols of the wave input's (batch, samples) axes; both must have stayed dynamic."""
    node = next(n for n in exported.graph.nodes if n.op == "placeholder" and n.name == "wave")
    dims = node.meta["val"].shape
    if not all(isinstance(d, torch.SymInt) for d in dims):
        raise ModelError(f"ONNX export fixed the input shape to {tuple(dims)}; the model needs shape-independent code")
    return dims[0].node.expr, dims[1].node.expr


def _rename_dims(proto, names: dict[str, str]) -> None:
    """Give the exporter's symbolic dimensions (s0, s17...) readable names, consistently."""
    values = [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]
    for value in values:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress and warns about optional packages; keep the CLI output clean."""
    level = logging.getLogger("torch.onnx").level
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger("torch.onnx").setLevel(level)


def compare_with_torch(bundle: ModelBundle, onnx_path: Path, seed: int = 1) -> dict[str, float]:
    """Embed random-noise 'utterances' both ways; the worst cosine and absolute difference."""
    rng = np.random.default_rng(seed)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 1600, 30000)]
    torch_emb, onnx_emb = TorchEmbedder(bundle), OnnxEmbedder(bundle, threads=None, path=onnx_path)
    # A padded batch, a single row, and a single short row (below the export's assumed width).
    ref = np.concatenate([torch_emb.embed_batch(waves), torch_emb.embed_batch(waves[:1]),
                          torch_emb.embed_batch(waves[1:2])])
    got = np.concatenate([onnx_emb.embed_batch(waves), onnx_emb.embed_batch(waves[:1]),
                          onnx_emb.embed_batch(waves[1:2])])
    cos = np.sum(ref * got, -1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(got, axis=-1))
    return {"check_min_cosine": float(cos.min()), "check_max_abs_diff": float(np.abs(ref - got).max())}
