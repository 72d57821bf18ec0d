"""Process-group plumbing for ``torchrun``: read RANK/WORLD_SIZE/LOCAL_RANK, pick the device and
backend (gloo on CPU, nccl on CUDA), and the few collectives the training loop needs."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from speakerverify.train.recipe import RecipeError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_env() -> DistInfo:
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise RecipeError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None


def pick_device(preference: str, info: DistInfo) -> torch.device:
    if preference not in ("auto", "cpu", "cuda"):
        raise RecipeError(f"recipe: device must be auto, cpu or cuda, got {preference!r}")
    use_cuda = preference == "cuda" or (preference == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RecipeError("recipe: device cuda asked for, but no CUDA device is available")
    torch.cuda.set_device(info.local_rank)
    return torch.device("cuda", info.local_rank)


def init(info: DistInfo, device: torch.device) -> None:
    if info.active and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, rank=info.rank, world_size=info.world_size, **kwargs)


def shutdown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.active:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def sum_across(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    if not info.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def average_gradients(modules: list[nn.Module], info: DistInfo) -> None:
    """Average the gradients of modules that DDP does not wrap (a missing gradient counts as 0)."""
    if not info.active:
        return
    for module in modules:
        for p in module.parameters():
            if not p.requires_grad:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= info.world_size


def average_buffers(modules: list[nn.Module], info: DistInfo) -> None:
    """Average floating-point buffers (BatchNorm running statistics) across ranks. DDP copies rank
    0's buffers into every rank before each forward, but each rank's last forward still updates its
    own copy, so without this the ranks end an epoch with different models."""
    if not info.active:
        return
    for module in modules:
        for t in module.buffers():
            if t.is_floating_point():
                dist.all_reduce(t.data)
                t.data /= info.world_size


def broadcast_parameters(modules: list[nn.Module], info: DistInfo) -> None:
    if not info.active:
        return
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def weights_digest(modules: list[nn.Module]) -> str:
    """SHA-256 of every weight and buffer, to check that ranks hold identical models."""
    h = hashlib.sha256()
    for module in modules:
        for name, t in module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
