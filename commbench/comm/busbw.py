"""All-reduce bus bandwidth over message sizes, as nccl-tests measures it, run on Ray workers.

Per size: every rank times each blocking all-reduce; per iteration the slowest rank counts (the
collective is done when the last rank has its result); the median over iterations is the time.
algbw = size / time, busbw = algbw x 2(N-1)/N.
"""

from __future__ import annotations

from typing import Any

def message_sizes(min_bytes: int, max_bytes: int) -> list[int]:
    """Powers of two from min to max (inclusive), whole fp32 elements."""
    if min_bytes > max_bytes:
        raise ValueError(f"min_bytes {min_bytes} is larger than max_bytes {max_bytes}")
    sizes, n = [], 1 << max(2, (min_bytes - 1).bit_length())
    while n <= max_bytes:
        sizes.append(n)
        n *= 2
    return sizes


def iterations_for(n_bytes: int, iters: int) -> int:
    """Fewer iterations for big messages (a 256 MiB all-reduce on loopback takes seconds); at least 3."""
    return max(3, min(iters, iters * (8 * 2**20) // max(n_bytes, 1)))


def busbw_loop(cfg: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Ray worker function: rank 0 returns [{bytes, iters, time_s (median), times_s}] per size."""
    import time

    import torch
    import torch.distributed as dist

    from commbench.stats import elementwise_max, percentile
    from commbench.comm.group import gather_to_rank0, join_group

    _, _, device = join_group(cfg)
    mine: list[list[float]] = []
    for n_bytes in cfg["sizes"]:
        tensor = torch.ones(n_bytes // 4, dtype=torch.float32, device=device)
        times = []
        for i in range(cfg["warmup_iters"] + iterations_for(n_bytes, cfg["iters"])):
            dist.barrier()  # start together: the time is the collective's, not a late rank's
            t0 = time.perf_counter()
            dist.all_reduce(tensor)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= cfg["warmup_iters"]:
                times.append(time.perf_counter() - t0)
        mine.append(times)
        del tensor
    gathered = gather_to_rank0(mine)
    if gathered is None:
        return None
    rows = []
    for k, n_bytes in enumerate(cfg["sizes"]):
        slowest = elementwise_max([r[k] for r in gathered])
        rows.append({"bytes": n_bytes, "iters": len(slowest), "time_s": percentile(slowest, 50),
                     "times_s": slowest})
    return rows
