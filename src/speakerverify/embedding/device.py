"""The compute device, picked in one place for every command (``--device cpu|cuda|auto``, the
training recipe's ``device``), and where mixed precision is used.

* ``cpu``: float32, the reference every other device is checked against;
* ``cuda``: the network runs under float16 autocast (the front end stays float32: its FFT, log and
  mean normalisation lose too much in half precision); embeddings come back as float32;
* ``auto``: cuda when torch sees a CUDA device, else cpu.

Training's mixed precision (the recipe's ``amp``) is picked here too: :func:`training_precision`.
"""

from __future__ import annotations

import contextlib

import torch

from speakerverify.errors import LaunchError, RecipeError

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


#: The recipe's ``amp`` settings (training's mixed precision).
AMP_SETTINGS = ("auto", "off", "bf16", "fp16")


def check_amp(setting: object) -> None:
    """A recipe's ``amp`` must be one of ``AMP_SETTINGS`` (called when the recipe is read, before a
    run directory exists, and by :func:`training_precision`)."""
    if setting not in AMP_SETTINGS:
        raise RecipeError(f"recipe: amp must be one of {', '.join(AMP_SETTINGS)}, got {setting!r}")


def training_precision(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a training run's network runs in (None: float32).

    ``auto``: bfloat16 on a CUDA device that has it (float32's exponent range, so no loss scaling),
    float16 with loss scaling on older GPUs, float32 on a CPU (where float32 is the reference and
    autocast is rarely faster). ``bf16`` also runs on a CPU; ``fp16`` needs CUDA. Only the network
    runs under autocast: front ends (power spectra overflow float16), heads and losses stay float32.
    """
    check_amp(setting)
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting == "fp16" and device.type != "cuda":
        raise LaunchError(f"amp fp16 needs a CUDA device (training runs on {device.type}); use bf16 or off")
    return torch.bfloat16 if setting == "bf16" else torch.float16


def autocast_to(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``'s type; a no-op context for None (float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
