"""Where this process sits in a ``torchrun`` launch: RANK, WORLD_SIZE, LOCAL_RANK (and
LOCAL_WORLD_SIZE) from the environment, as torchrun sets them; a plain run is rank 0 of 1.

Used by training (with a process group) and by sharded extraction (without one: each rank's share
of the work follows from its rank alone)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from speakerverify.errors import LaunchError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    #: Processes on this node (torchrun's LOCAL_WORLD_SIZE): they share its cores and devices.
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_env() -> DistInfo:
    try:
        world = int(os.environ.get("WORLD_SIZE", 1))
        info = DistInfo(int(os.environ.get("RANK", 0)), world, int(os.environ.get("LOCAL_RANK", 0)),
                        int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    except ValueError:
        raise LaunchError("RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers") from None
    if not 0 <= info.rank < info.world_size:
        raise LaunchError(f"RANK {info.rank} is outside WORLD_SIZE {info.world_size}")
    return info


def threads_per_process(info: DistInfo) -> int:
    """This node's cores shared out among its processes (at least one each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, info.local_world_size))
