"""Process-group plumbing for ``torchrun``: the backend (gloo on CPU, nccl on CUDA) and the few
collectives the training loop needs. The rank and world size come from :mod:`speakerverify.ranks`
(re-exported here), the device from :func:`speakerverify.embedding.device.pick_device`."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from speakerverify.ranks import DistInfo, from_env  # noqa: F401 -- re-exported for the training loop


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
