"""The PyTorch inference engine: a model directory's front end and network on padded batches, on
the CPU (float32) or a CUDA device (network in float16 autocast, see :mod:`.device`)."""

from __future__ import annotations

import time

import numpy as np
import torch

from speakerverify.embedding.device import network_precision
from speakerverify.embedding.model_dir import ModelBundle
from speakerverify.models.inference import for_inference


def pad_batch(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, N) batch and the valid samples of each row."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    return batch, lengths


class TorchEmbedder:
    """Embeds waveforms with the PyTorch network of a :class:`ModelBundle`."""

    engine = "torch"

    def __init__(self, bundle: ModelBundle, threads: int | None = None,
                 device: torch.device | None = None) -> None:
        self.bundle = bundle
        self.device = device or torch.device("cpu")
        if threads:
            torch.set_num_threads(threads)
        if self.device.type != "cpu":  # the bundle's modules move with it (the verifier scores on them too)
            bundle.frontend.to(self.device)
            bundle.network.to(self.device)
        self.network = for_inference(bundle.network)  # BatchNorm folded: same embeddings, less work
        self.compute_s = 0.0

    @torch.inference_mode()
    def embed_batch(self, waves: list[np.ndarray], second: bool = False) -> np.ndarray:
        batch, lengths = pad_batch(waves)
        t0 = time.perf_counter()
        feats, frames = self.bundle.frontend(batch.to(self.device), lengths.to(self.device))
        net = self.network
        with network_precision(self.device):
            emb = net.forward_second(feats, frames) if second else net(feats, frames)
        emb = emb.float().cpu().numpy()  # waits for the device, so compute_s counts its work
        self.compute_s += time.perf_counter() - t0
        return emb
