"""A worker's place in the process group Ray Train set up: rank, world size, device, threads; and the
one all_gather_object that brings every rank's figures to rank 0."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from commbench.host import available_cores


def threads_for(cfg: dict[str, Any], local_world_size: int) -> int:
    if cfg.get("threads_per_worker"):
        return cfg["threads_per_worker"]
    # Workers sharing a machine share its cores: oversubscribed threads measure contention.
    return max(1, available_cores() // max(1, local_world_size))


def join_group(cfg: dict[str, Any]) -> tuple[int, int, torch.device]:
    """This worker's rank, world size and device; threads sized to the cores it shares."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(threads_for(cfg, int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    device = gpu_device() if cfg["use_gpu"] else torch.device("cpu")
    return rank, world, device


def gpu_device() -> torch.device:
    """The GPU Ray Train assigned this worker (its CUDA_VISIBLE_DEVICES may not start at LOCAL_RANK),
    made current, so every synchronize(device) and event is on it; cuda:LOCAL_RANK outside Ray Train."""
    try:
        from ray.train.torch import get_device

        device = get_device()
    except (ImportError, RuntimeError, ValueError):  # not inside a Ray Train worker (the test harness)
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    torch.cuda.set_device(device)
    return device


def gather_to_rank0(mine: Any) -> list[Any] | None:
    """Every rank's `mine` on rank 0 (None elsewhere): one all_gather_object, under the group's timeout."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return gathered if dist.get_rank() == 0 else None
