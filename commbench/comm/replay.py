"""Replays of a model's gradient exchange on N real ranks, without its compute.

trace (the default): a recorded step with compute as sleep. Each step sleeps the forward time, issues
each bucket's all-reduce asynchronously at its recorded ready offset from backward start (DDP's
order, sizes and dtypes, through the hooks' ByteCounter), sleeps to the end of backward and codec,
waits for the outstanding collectives (the exposed comm) and sleeps the optimizer time. A sleeping
rank uses no CPU, so 8 ranks on 2 cores measure the network, not CPU contention.

back_to_back: the buckets one after the other, each to completion, no compute: the sum the alpha-beta
model prices.

Both check that exactly the model's payload was sent (commands/replay.py picks the records).
"""

from __future__ import annotations

import time
from typing import Any


def _sleep_until(deadline: float) -> None:
    left = deadline - time.perf_counter()
    if left > 0:
        time.sleep(left)


def trace_step(counter, tensors: list, trace: dict[str, Any], device=None) -> dict[str, float]:
    """One traced step on this rank: its step time, the compute it slept, the wait and busy time."""
    from commbench.split import clip, length, union

    t0 = time.perf_counter()
    _sleep_until(t0 + trace["forward_s"])
    b0 = time.perf_counter()
    futures = []
    for tensor, offset in zip(tensors, trace["ready_s"]):
        _sleep_until(b0 + offset)
        futures.append(counter.all_reduce(tensor))
    _sleep_until(b0 + trace["backward_s"] + trace["codec_s"])
    compute_end = time.perf_counter()
    for fut in futures:
        fut.wait()
    if getattr(device, "type", "cpu") == "cuda":  # a CUDA future's wait only orders the stream
        import torch

        torch.cuda.synchronize(device)
    waited = time.perf_counter()
    _sleep_until(waited + trace["optimizer_s"])
    end = time.perf_counter()
    spans = [(a - t0, (b if b is not None else waited) - t0) for a, b in counter.step.spans]
    wait = waited - compute_end
    return {"step": end - t0, "compute": end - t0 - wait, "wait": wait,
            "busy": length(clip(union(spans), 0.0, end - t0))}


def replay_loop(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Ray worker function: per replayed model, rank 0 returns each timed iteration's figures (the
    slowest rank's step) and the payloads counted."""
    import torch
    import torch.distributed as dist

    from commbench.comm.group import gather_to_rank0, join_group
    from commbench.comm.hooks import ByteCounter

    rank, world, device = join_group(cfg)
    counter = ByteCounter(world)
    mine = []
    for job in cfg["replays"]:
        tensors = [torch.ones(b["numel"], dtype=getattr(torch, b["dtype"]), device=device) for b in job["buckets"]]
        iters, payloads = [], []
        for i in range(cfg["warmup_iters"] + cfg["iters"]):
            dist.barrier()
            counter.start_step()
            if job.get("traces"):  # one per rank of the traced run; a nodes=1 trace serves every rank
                figures = trace_step(counter, tensors, job["traces"][rank % len(job["traces"])], device)
            else:
                figures = back_to_back(counter, tensors, device)
            step = counter.end_step()
            if i >= cfg["warmup_iters"]:
                iters.append(figures)
                payloads.append(step.payload_bytes)
        mine.append({"iters": iters, "payloads": payloads})
    gathered = gather_to_rank0(mine)
    if gathered is None:
        return None
    return {"replays": [slowest([rank[j] for rank in gathered]) for j in range(len(cfg["replays"]))]}


def back_to_back(counter, tensors: list, device) -> dict[str, float]:
    # One bucket after the other, each to completion: the exchange the alpha-beta model prices
    # (sum over buckets). DDP issues them asynchronously, and gloo's worker threads then run
    # several at once on the same cores, which the trace mode and the run's own figures show.
    import torch

    t0 = time.perf_counter()
    for t in tensors:
        counter.all_reduce(t).wait()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    return {"step": elapsed, "compute": 0.0, "wait": elapsed, "busy": elapsed}


def slowest(ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per iteration over ranks: the step is the slowest rank's, the exposed comm what is left of it
    after the compute of the rank that slept longest (as split.step_split does for a run)."""
    steps = []
    for at in zip(*(r["iters"] for r in ranks)):
        step = max(f["step"] for f in at)
        busiest = max(at, key=lambda f: f["compute"])
        steps.append({"step_s": step, "exposed_comm_s": step - busiest["compute"], "comm_busy_s": busiest["busy"]})
    return {"iters": steps, "payloads": sorted({p for r in ranks for p in r["payloads"]})}
