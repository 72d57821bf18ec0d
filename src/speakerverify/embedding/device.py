"""The compute device, picked in one place for every command (``--device cpu|cuda|auto``, the
training recipe's ``device``), and where mixed precision is used.

* ``cpu``: float32, the reference every other device is checked against;
* ``cuda``: the network runs under float16 autocast (the front end stays float32: its FFT, log and
  mean normalisation lose too much in half precision); embeddings come back as float32;
* ``auto``: cuda when torch sees a CUDA device, else cpu.
"""

from __future__ import annotations

import contextlib

import torch

from speakerverify.errors import LaunchError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """The device ``preference`` names (``cuda`` takes GPU ``local_rank``, one per torchrun process
    on the node); a device that is not there is one :class:`LaunchError` line."""
    if preference not in DEVICES:
        raise LaunchError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA support"
        raise LaunchError(f"device cuda: no CUDA device is available (torch {torch.__version__}, {build}); "
                          "use --device cpu or auto")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise LaunchError(f"device cuda: LOCAL_RANK {local_rank} needs GPU {local_rank}, "
                          f"but only {count} CUDA device(s) are visible")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def network_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """The precision the network runs in on ``device``: float16 autocast on CUDA, float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
