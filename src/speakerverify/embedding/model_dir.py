"""The model-directory format, in one place: resolve, load and write a model directory.

A model directory holds:

* ``model.yaml`` -- ``arch`` (registered model name), ``params``, ``frontend`` config,
  ``min_duration_s``, ``name``, ``version``, and optionally ``vad`` (the speech-activity policy
  applied before embedding, :class:`speakerverify.audio.vad.VadConfig`);
* ``model.pt`` -- the network's ``state_dict``;
* ``backend.json`` (optional) -- scoring, calibration and thresholds (see :mod:`speakerverify.scoring`);
* ``cohort.npy`` (optional) -- AS-norm cohort embeddings (float16), when ``backend.json`` uses AS-norm;
* ``model.onnx`` (optional) -- the same network exported for onnxruntime, stamped with the SHA-256
  of the ``model.pt`` it came from.

``--model`` accepts a shipped model's name (a folder of ``speakerverify/pretrained``), a model
directory, or a training run directory (its ``model/`` sub-folder). Writing a model directory
replaces what an earlier model left in the folder: a ``backend.json``, ``cohort.npy`` or
``model.onnx`` that does not belong to the new weights is removed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from speakerverify import models
from speakerverify.atomic import write_atomic
from speakerverify.audio.vad import VadConfig
from speakerverify.errors import ModelError
from speakerverify.features import build_frontend

PRETRAINED = Path(__file__).parent.parent / "pretrained"
DEFAULT_MODEL = "default"
CONFIG, WEIGHTS, BACKEND, COHORT, ONNX = "model.yaml", "model.pt", "backend.json", "cohort.npy", "model.onnx"


def resolve_model_dir(name_or_dir: str | Path | None) -> Path:
    spec = str(name_or_dir or DEFAULT_MODEL)
    candidates = [Path(spec), Path(spec) / "model", PRETRAINED / spec]
    for c in candidates:
        if (c / CONFIG).is_file():
            return c
    shipped = ", ".join(shipped_models()) or "none"
    raise ModelError(f"{spec}: not a model directory, run directory or shipped model (shipped: {shipped})")


def shipped_models() -> list[str]:
    return sorted(p.name for p in PRETRAINED.iterdir() if (p / CONFIG).is_file()) if PRETRAINED.is_dir() else []


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ModelBundle:
    """A loaded model: config, front end, network, back-end settings (and AS-norm cohort)."""

    directory: Path
    config: dict[str, Any]
    frontend: torch.nn.Module
    network: torch.nn.Module
    backend: dict[str, Any] = field(default_factory=dict)
    cohort: np.ndarray | None = None

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
    def vad(self) -> VadConfig | None:
        """The speech-activity policy of this model (``None``: every sample is embedded)."""
        return VadConfig.from_dict(self.config.get("vad"))

    @property
    def two_branch(self) -> bool:
        return hasattr(self.network, "forward_second")

    @property
    def weights_path(self) -> Path:
        return self.directory / WEIGHTS

    @property
    def onnx_path(self) -> Path:
        return self.directory / ONNX


def write_model_dir(out: str | Path, arch: str, params: dict, frontend: dict, state_dict: dict,
                    *, name: str, version: str = "1", min_duration_s: float = 0.1,
                    backend: dict | None = None, cohort: np.ndarray | None = None,
                    extra: dict | None = None) -> Path:
    """Write a model directory (each file written then renamed); files of an earlier model in
    ``out`` that these weights do not go with (back end, cohort, ONNX graph) are removed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "version": version, "arch": arch, "params": params, "frontend": frontend,
              "min_duration_s": min_duration_s, **(extra or {})}
    write_atomic(out / CONFIG, yaml.safe_dump(config, sort_keys=False).encode())
    tmp = out / (WEIGHTS + ".tmp")
    torch.save(state_dict, tmp)
    tmp.replace(out / WEIGHTS)
    (out / ONNX).unlink(missing_ok=True)
    write_backend(out, backend, cohort)
    return out


def write_backend(directory: str | Path, backend: dict | None, cohort: np.ndarray | None = None) -> None:
    """Write (or, for None, remove) ``backend.json`` and ``cohort.npy`` (stored as float16)."""
    directory = Path(directory)
    if backend is None:
        (directory / BACKEND).unlink(missing_ok=True)
    else:
        write_atomic(directory / BACKEND, json.dumps(backend, indent=2).encode())
    if cohort is None:
        (directory / COHORT).unlink(missing_ok=True)
    else:
        np.save(directory / COHORT, np.asarray(cohort).astype(np.float16))


def load_model(name_or_dir: str | Path | None = None) -> ModelBundle:
    directory = resolve_model_dir(name_or_dir)
    try:
        config = yaml.safe_load((directory / CONFIG).read_text())
        network = models.build(config["arch"], **(config.get("params") or {}))
        state = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (OSError, KeyError, RuntimeError, yaml.YAMLError) as exc:
        raise ModelError(f"{directory}: cannot load model ({type(exc).__name__}: {exc})") from None
    network.eval()
    frontend = build_frontend(config.get("frontend"))
    frontend.eval()
    backend_file, cohort_file = directory / BACKEND, directory / COHORT
    backend = json.loads(backend_file.read_text()) if backend_file.is_file() else {}
    cohort = np.load(cohort_file) if cohort_file.is_file() else None
    return ModelBundle(directory, config, frontend, network, backend, cohort)


def half_weights(state: dict) -> dict:
    """``state`` with its learned weights as float16 (half the size on disk; the loader copies them
    into the float32 network); BatchNorm statistics keep float32 (tiny variances would lose precision)."""
    return {k: (v.half() if v.is_floating_point() and "running_" not in k else v) for k, v in state.items()}
