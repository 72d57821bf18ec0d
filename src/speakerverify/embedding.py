"""Embedding: a model directory (front end + network + back-end settings) turned into vectors.

A model directory holds:

* ``model.yaml`` -- ``arch`` (registered model name), ``params``, ``frontend`` config,
  ``min_duration_s``, ``name``, ``version``;
* ``model.pt`` -- the network's ``state_dict``;
* ``backend.json`` (optional) -- scoring, calibration and thresholds (see :mod:`speakerverify.scoring`);
* ``model.onnx`` (optional) -- the same network exported for onnxruntime.

``--model`` accepts a shipped model's name (a folder of ``speakerverify/pretrained``), a model
directory, or a training run directory (its ``model/`` sub-folder).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from speakerverify import models
from speakerverify.errors import ModelError
from speakerverify.features import build_frontend

PRETRAINED = Path(__file__).parent / "pretrained"
DEFAULT_MODEL = "default"


def resolve_model_dir(name_or_dir: str | Path | None) -> Path:
    spec = str(name_or_dir or DEFAULT_MODEL)
    candidates = [Path(spec), Path(spec) / "model", PRETRAINED / spec]
    for c in candidates:
        if (c / "model.yaml").is_file():
            return c
    shipped = ", ".join(shipped_models()) or "none"
    raise ModelError(f"{spec}: not a model directory, run directory or shipped model (shipped: {shipped})")


def shipped_models() -> list[str]:
    return sorted(p.name for p in PRETRAINED.iterdir() if (p / "model.yaml").is_file()) if PRETRAINED.is_dir() else []


@dataclass
class ModelBundle:
    """A loaded model: config, front end, network, back-end settings."""

    directory: Path
    config: dict[str, Any]
    frontend: torch.nn.Module
    network: torch.nn.Module
    backend: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.directory.name)

    @property
    def version(self) -> str:
        return str(self.config.get("version", "0"))

    @property
    def ident(self) -> str:
        """Identifies the embedding space: embeddings from different idents must not be compared."""
        return f"{self.name}@{self.version}"

    @property
    def min_duration_s(self) -> float:
        return float(self.config.get("min_duration_s", 0.1))

    @property
    def two_branch(self) -> bool:
        return hasattr(self.network, "forward_second")


def write_model_dir(out: str | Path, arch: str, params: dict, frontend: dict, state_dict: dict,
                    *, name: str, version: str = "1", min_duration_s: float = 0.1,
                    backend: dict | None = None, extra: dict | None = None) -> Path:
    """Write a model directory atomically enough for our use (files written then renamed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "version": version, "arch": arch, "params": params, "frontend": frontend,
              "min_duration_s": min_duration_s, **(extra or {})}
    _atomic_write(out / "model.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    tmp = out / "model.pt.tmp"
    torch.save(state_dict, tmp)
    tmp.replace(out / "model.pt")
    if backend is not None:
        _atomic_write(out / "backend.json", json.dumps(backend, indent=2).encode())
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def load_model(name_or_dir: str | Path | None = None) -> ModelBundle:
    directory = resolve_model_dir(name_or_dir)
    try:
        config = yaml.safe_load((directory / "model.yaml").read_text())
        network = models.build(config["arch"], **(config.get("params") or {}))
        state = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (OSError, KeyError, RuntimeError, yaml.YAMLError) as exc:
        raise ModelError(f"{directory}: cannot load model ({type(exc).__name__}: {exc})") from None
    network.eval()
    frontend = build_frontend(config.get("frontend"))
    frontend.eval()
    backend_file = directory / "backend.json"
    backend = json.loads(backend_file.read_text()) if backend_file.is_file() else {}
    return ModelBundle(directory, config, frontend, network, backend)


def pad_batch(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    return batch, lengths


class TorchEmbedder:
    """Embeds waveforms with the PyTorch network of a :class:`ModelBundle`."""

    backend_name = "torch"

    def __init__(self, bundle: ModelBundle, threads: int | None = None) -> None:
        self.bundle = bundle
        if threads:
            torch.set_num_threads(threads)
        self.compute_s = 0.0

    @torch.inference_mode()
    def embed_batch(self, waves: list[np.ndarray], second: bool = False) -> np.ndarray:
        batch, lengths = pad_batch(waves)
        t0 = time.perf_counter()
        feats, frames = self.bundle.frontend(batch, lengths)
        net = self.bundle.network
        emb = net.forward_second(feats, frames) if second else net(feats, frames)
        self.compute_s += time.perf_counter() - t0
        return emb.float().numpy()


def make_embedder(bundle: ModelBundle, backend: str = "torch", threads: int | None = None):
    if backend == "torch":
        return TorchEmbedder(bundle, threads)
    if backend == "onnx":
        from speakerverify.onnx_runtime import OnnxEmbedder

        return OnnxEmbedder(bundle, threads)
    raise ModelError(f"unknown backend {backend!r}: use torch or onnx")
