"""Gradient compression as DDP comm hooks, every one counted at its collectives by the ByteCounter.

- none:     fp32 all-reduce (hooks.counting_allreduce_hook)
- fp16/bf16: torch's fp16/bf16_compress_wrapper around the counting all-reduce: the counter sees the
            half-width tensor it really reduces
- powersgd: torch's powerSGD_hook (rank r, error feedback, warm start). It issues its own all-reduces,
            two of them from future callbacks, so they are counted where torch.distributed is called
            (CountingDist). One bucket: on gloo, several buckets' callback-issued all-reduces can
            interleave differently on different ranks and abort with a size mismatch.
- topk:     the largest |g| fraction `ratio` of each bucket, with error feedback; values (fp32) and
            indices (int32) all-gathered, summed on every rank
- int8:     each bucket quantized with its own scale (max|g| / 127); int8 values and the fp32 scale
            all-gathered, dequantized and averaged on every rank (an int8 sum would overflow)
"""

# No `from __future__ import annotations`: DDP checks a hook's return annotation at runtime.
import math
from dataclasses import dataclass, field
import importlib.util
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from commbench.comm.hooks import ByteCounter, counting_allreduce_hook, timed

Future = torch.futures.Future

# ---------------------------------------------------------------- torch's hooks, counted
class CountingDist:
    """torch.distributed as torch's PowerSGD hook module sees it, with each all_reduce counted and its
    completion stamped."""

    def __init__(self, counter: ByteCounter):
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        return getattr(dist, name)

    def all_reduce(self, tensor: torch.Tensor, *args: Any, **kwargs: Any):
        span = self._counter.issued(tensor)
        return StampedWork(dist.all_reduce(tensor, *args, **kwargs), self._counter.done_of(span))


class StampedWork:
    """An async collective's Work whose future stamps its completion (PowerSGD calls get_future())."""

    def __init__(self, work, done: Callable) -> None:
        self._work, self._done = work, done

    def get_future(self) -> Future:
        return self._work.get_future().then(self._done)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._work, name)


POWERSGD = "torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook"


def private_powersgd_module(counter: ByteCounter):
    """A private copy of torch's PowerSGD hook module whose `dist` (and default_hooks' all-reduce,
    used before start_iter) count through `counter`: torch's own module, and every other DDP in the
    process, stay untouched."""
    spec = importlib.util.find_spec(POWERSGD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counting = CountingDist(counter)
    module.dist = counting

    def allreduce_fut(process_group, tensor):  # default_hooks._allreduce_fut, counted
        group = process_group if process_group is not None else dist.group.WORLD
        tensor.div_(group.size())
        return counting.all_reduce(tensor, group=group, async_op=True).get_future().then(lambda f: f.value()[0])

    module.default = type("CountedDefaultHooks", (), {"_allreduce_fut": staticmethod(allreduce_fut)})
    return module


def powersgd(counter: ByteCounter, params: dict[str, Any]) -> tuple[Any, Callable]:
    module = private_powersgd_module(counter)
    state = module.PowerSGDState(
        process_group=counter.group, matrix_approximation_rank=params["rank"],
        start_powerSGD_iter=params["start_iter"], min_compression_rate=params["min_compression_rate"],
        use_error_feedback=True, warm_start=True, random_seed=0)
    return state, timed(module.powerSGD_hook, counter, late_collectives=True)


# ---------------------------------------------------------------- top-k and int8: all-gather hooks
@dataclass
class TopKState:
    counter: ByteCounter
    ratio: float
    residuals: dict[int, torch.Tensor] = field(default_factory=dict)  # error feedback per bucket


def gather_and_average(counter: ByteCounter, grad: torch.Tensor, parts: list[torch.Tensor],
                       add: Callable[..., Any]) -> torch.futures.Future[torch.Tensor]:
    """All-gather this rank's encoded `parts`, then set `grad` (the bucket) to the mean over ranks of
    what add(grad, *a rank's parts) decodes into it."""
    gathered = torch.futures.collect_all([counter.all_gather(part) for part in parts])

    def decode(fut) -> torch.Tensor:
        per_part = [f.value() for f in fut.value()]  # per part, every rank's tensor
        grad.zero_()
        for rank_parts in zip(*per_part):
            add(grad, *rank_parts)
        return grad.div_(counter.world_size)

    return gathered.then(decode)


def topk_hook(state: TopKState, bucket) -> torch.futures.Future[torch.Tensor]:
    """Send the k = ceil(ratio x n) largest-magnitude entries (plus what earlier steps left out)."""
    counter = state.counter
    grad = bucket.buffer()
    residual = state.residuals.get(bucket.index())
    if residual is not None and residual.numel() != grad.numel():
        residual = None  # DDP rebuilt its buckets after the first step: bucket i is another bucket now
    acc = grad + residual if residual is not None else grad.clone()
    k = max(1, math.ceil(state.ratio * acc.numel()))
    index = acc.abs().topk(k, sorted=False).indices
    values = acc[index]
    acc[index] = 0
    state.residuals[bucket.index()] = acc
    return gather_and_average(counter, grad, [values, index.to(torch.int32)],
                              lambda g, v, i: g.index_add_(0, i.long(), v))


def int8_hook(counter: ByteCounter, bucket) -> torch.futures.Future[torch.Tensor]:
    """Send the bucket as int8 with one fp32 scale."""
    grad = bucket.buffer()
    scale = (grad.abs().max() / 127).clamp(min=torch.finfo(torch.float32).tiny).reshape(1)
    quantized = torch.round(grad / scale).to(torch.int8)
    return gather_and_average(counter, grad, [quantized, scale], lambda g, q, s: g.add_(q.to(g.dtype) * s))


def hook_for(name: str, params: dict[str, Any], counter: ByteCounter) -> tuple[Any, Callable]:
    """(state, hook) for DDP.register_comm_hook; every hook timed (hooks.timed), its codec included."""
    if name == "none":
        return counter, timed(counting_allreduce_hook, counter)
    if name == "fp16":
        return counter, timed(default_hooks.fp16_compress_wrapper(counting_allreduce_hook), counter)
    if name == "bf16":
        return counter, timed(default_hooks.bf16_compress_wrapper(counting_allreduce_hook), counter)
    if name == "powersgd":
        return powersgd(counter, params)
    if name == "topk":
        return TopKState(counter, params["ratio"]), timed(topk_hook, counter)
    if name == "int8":
        return counter, timed(int8_hook, counter)
    raise ValueError(f"unknown compression {name!r}")
