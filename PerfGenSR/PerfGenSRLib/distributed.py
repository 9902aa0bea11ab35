"""This process's place in a ``torchrun`` job: rank, world size, device, DDP wrapping.

One process without ``torchrun``; under it, the process group is set up from the environment
(NCCL on CUDA, gloo on the CPU), as ``torch.distributed`` documents.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


class Distributed:
    """Rank, world size and device of this process (one process without ``torchrun``)."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                local = int(os.environ.get("LOCAL_RANK", "0"))
                self.device = torch.device("cuda", local)
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module as trained: DistributedDataParallel when several processes run."""
        return DistributedDataParallel(module) if self.world > 1 else module

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
