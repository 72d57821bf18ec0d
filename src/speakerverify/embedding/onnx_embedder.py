"""The onnxruntime inference engine: a model directory's ``model.onnx`` (see :mod:`.onnx_export`).

The graph takes ``wave`` (B, N) float32 16 kHz samples, zero-padded, and ``lengths`` (B,) int64
valid samples per row, with dynamic B and N; it returns ``embedding`` (B, D) and, for two-branch
models, ``embedding_second``. The file records the SHA-256 of the ``model.pt`` it was exported
from; :class:`OnnxEmbedder` refuses a ``model.onnx`` that no longer matches its model directory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from speakerverify.embedding.model_dir import ModelBundle, file_sha256
from speakerverify.embedding.torch_embedder import pad_batch
from speakerverify.errors import ModelError

INPUTS = ("wave", "lengths")
META_SHA = "speakerverify.model_pt_sha256"
META_IDENT = "speakerverify.ident"
META_MIN_SAMPLES = "speakerverify.min_samples"
#: Shortest padded batch width any graph is exported for (one 25 ms frame). The exporter may
#: assume a longer one (recorded in the file); :class:`OnnxEmbedder` zero-pads shorter batches up
#: to it, which ``lengths`` makes harmless.
MIN_SAMPLES = 400


def output_names(bundle: ModelBundle) -> list[str]:
    return ["embedding", "embedding_second"] if bundle.two_branch else ["embedding"]


class OnnxEmbedder:
    """Embeds waveforms with onnxruntime; same interface as
    :class:`speakerverify.embedding.torch_embedder.TorchEmbedder`."""

    engine = "onnx"
    device = torch.device("cpu")

    def __init__(self, bundle: ModelBundle, threads: int | None = None, path: str | Path | None = None) -> None:
        import onnxruntime as ort

        self.bundle = bundle
        self.path = Path(path) if path is not None else bundle.onnx_path
        if not self.path.is_file():
            raise ModelError(f"{bundle.directory}: no model.onnx; create it with "
                             f"`speakerverify export {bundle.directory} --onnx {self.path}`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or 0)  # 0: onnxruntime's default
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own exception types
            raise ModelError(f"{self.path}: cannot load ONNX model ({type(exc).__name__})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self._check_matches_model(meta)
        self.min_samples = int(meta.get(META_MIN_SAMPLES, MIN_SAMPLES))
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.compute_s = 0.0

    def _check_matches_model(self, meta: dict[str, str]) -> None:
        sha = meta.get(META_SHA)
        pt = self.bundle.weights_path
        if sha and pt.is_file() and file_sha256(pt) != sha:
            raise ModelError(f"{self.path}: exported from a different model.pt than {pt}; export it again")

    def embed_batch(self, waves: list[np.ndarray], second: bool = False) -> np.ndarray:
        name = "embedding_second" if second else "embedding"
        if name not in self.outputs:
            raise ModelError(f"{self.path}: has no {name} output")
        batch, lengths = pad_batch(waves)
        wave = batch.numpy()
        if wave.shape[1] < self.min_samples:
            wave = np.pad(wave, ((0, 0), (0, self.min_samples - wave.shape[1])))
        t0 = time.perf_counter()
        (emb,) = self.session.run([name], {"wave": wave, "lengths": lengths.numpy().astype(np.int64)})
        self.compute_s += time.perf_counter() - t0
        return np.asarray(emb, dtype=np.float32)
