"""This machine's share of cores: CPU affinity and the cgroup quota, not os.cpu_count() (a docker
container limited to 2 of 16 cores has 2). A leaf."""

from __future__ import annotations

import math
import os


def cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> float | None:
    """cgroup v2's CPU quota in cores ('max' or no file: none)."""
    try:
        quota, period = open(path).read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def available_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_quota()
    return max(1, min(cores, math.floor(quota)) if quota else cores)
