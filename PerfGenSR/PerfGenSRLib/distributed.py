"""This process's place in a ``torchrun`` job: rank, world size, device, DDP wrapping.

One process without ``torchrun``; under it, the process group is set up from the environment
(NCCL on CUDA, gloo on the CPU), as ``torch.distributed`` documents. Work shared by item (studies of
a cohort, of an evaluation) is split with :meth:`Distributed.shard` (rank r takes items r, r + N,
...) and brought together with :meth:`Distributed.gather`; :meth:`Distributed.share` hands every
rank rank 0's value (a staging folder).
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


class Distributed:
    """Rank, world size and device of this process (one process without ``torchrun``)."""

    def __init__(self, device: torch.device, timeout: datetime.timedelta | None = None):
        """``timeout`` bounds every collective (torch's default without it); a rank whose share of the
        studies ends early waits that long at most for the others."""
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                local = int(os.environ.get("LOCAL_RANK", "0"))
                self.device = torch.device("cuda", local)
                torch.cuda.set_device(self.device)
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, **({"timeout": timeout} if timeout else {}))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module as trained: DistributedDataParallel when several processes run."""
        return DistributedDataParallel(module) if self.world > 1 else module

    def shard(self, items: list) -> list:
        """This rank's share of ``items``: items rank, rank + world, ... (all of them in one process)."""
        return list(items)[self.rank :: self.world]

    def gather(self, value) -> list:
        """Every rank's ``value`` (any picklable object) in rank order, on every rank."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def share(self, value=None):
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
