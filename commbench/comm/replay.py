"""Communication-only replay: a model's gradient buckets, in DDP's order, through the same
all-reduce with no compute (one bucket at a time) — what one step's gradient exchange costs without training's CPU contention.

The bucket sizes and order come from a run's record (commands/replay.py picks it); every collective goes
through the hook's ByteCounter, so the replay is checked to send exactly the model's payload.
"""

from __future__ import annotations

from typing import Any


def replay_loop(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Ray worker function: rank 0 returns per-iteration times (slowest rank) and the bytes counted."""
    import time

    import torch
    import torch.distributed as dist

    from commbench.comm.hooks import ByteCounter
    from commbench.stats import elementwise_max
    from commbench.comm.group import gather_to_rank0, join_group

    _, world, device = join_group(cfg)
    tensors = [torch.ones(b["numel"], dtype=getattr(torch, b["dtype"]), device=device)
               for b in cfg["buckets"]]
    counter = ByteCounter(world)
    times, payloads = [], []
    for i in range(cfg["warmup_iters"] + cfg["iters"]):
        dist.barrier()
        counter.start_step()
        t0 = time.perf_counter()
        # One bucket after the other, each to completion: the exchange the alpha-beta model prices
        # (sum over buckets). DDP issues them asynchronously, and gloo's worker threads then run
        # several at once on the same cores, which the run's own comm figures already show.
        for t in tensors:
            counter.all_reduce(t).wait()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
        step = counter.end_step()
        if i >= cfg["warmup_iters"]:
            times.append(elapsed)
            payloads.append(step.payload_bytes)
    gathered = gather_to_rank0({"times": times, "payloads": payloads})
    if gathered is None:
        return None
    return {"times_s": elementwise_max([r["times"] for r in gathered]),
            "payloads": sorted({p for r in gathered for p in r["payloads"]})}
