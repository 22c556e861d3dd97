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
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

from commbench.comm.hooks import ByteCounter, counting_allreduce_hook

Future = torch.futures.Future

# Scheme -> its parameters: name -> (check, default). Checks raise ValueError with the reason.
SCHEMES: dict[str, dict[str, tuple[Callable[[Any], bool], Any, str]]] = {
    "none": {},
    "fp16": {},
    "bf16": {},
    "powersgd": {
        "rank": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, 2, "an integer >= 1"),
        # >= 2: torch needs it for error feedback and warm start; steps before it are plain all-reduce.
        "start_iter": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2, 2, "an integer >= 2"),
        "min_compression_rate": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, 2,
                                 "a number > 0"),
    },
    "topk": {"ratio": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1, 0.01,
                       "a number in (0, 1]")},
    "int8": {},
}
SINGLE_BUCKET_MB = 1e5  # bucket_cap_mb that puts every zoo model's gradients in one bucket (100 GB)


def validate(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The scheme's parameters with defaults filled in; ValueError names what is wrong."""
    if name not in SCHEMES:
        raise ValueError(f"unknown compression {name!r}; known: {', '.join(SCHEMES)}")
    spec = SCHEMES[name]
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"compression {name} has no parameter {unknown[0]!r}"
                         + (f"; its parameters: {', '.join(spec)}" if spec else ""))
    out = {}
    for key, (ok, default, what) in spec.items():
        value = params.get(key, default)
        if not ok(value):
            raise ValueError(f"compression.{key} must be {what}, got {value!r}")
        out[key] = value
    return out


# ---------------------------------------------------------------- torch's hooks, counted
class CountingDist:
    """torch.distributed as torch's PowerSGD hook module sees it, with each all_reduce counted."""

    def __init__(self, counter: ByteCounter):
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        return getattr(dist, name)

    def all_reduce(self, tensor: torch.Tensor, *args: Any, **kwargs: Any):
        self._counter.issued(tensor)
        return dist.all_reduce(tensor, *args, **kwargs)


def counted(hook: Callable, counter: ByteCounter) -> Callable:
    """Note the bucket, its payload and the end of its communication around a hook whose collectives
    CountingDist counts. The payload is exact with one bucket in flight, as PowerSGD runs here."""

    def run(state, bucket) -> torch.futures.Future[torch.Tensor]:
        seen = counter.bucket_ready(bucket)
        before = counter.step.payload_bytes

        def finished(fut: Future) -> torch.Tensor:
            seen.payload_bytes = counter.step.payload_bytes - before
            return counter.done(fut)

        return hook(state, bucket).then(finished)

    return run


def powersgd(counter: ByteCounter, params: dict[str, Any]) -> tuple[Any, Callable]:
    # powerSGD_hook calls default_hooks._allreduce_fut before start_iter, dist.all_reduce after.
    powerSGD_hook.dist = default_hooks.dist = CountingDist(counter)
    state = powerSGD_hook.PowerSGDState(
        process_group=counter.group, matrix_approximation_rank=params["rank"],
        start_powerSGD_iter=params["start_iter"], min_compression_rate=params["min_compression_rate"],
        use_error_feedback=True, warm_start=True, random_seed=0)
    return state, counted(powerSGD_hook.powerSGD_hook, counter)


# ---------------------------------------------------------------- top-k and int8: all-gather hooks
@dataclass
class TopKState:
    counter: ByteCounter
    ratio: float
    residuals: dict[int, torch.Tensor] = field(default_factory=dict)  # error feedback per bucket


def gather_and_average(counter: ByteCounter, seen, grad: torch.Tensor, parts: list[torch.Tensor],
                       add: Callable[..., Any]) -> torch.futures.Future[torch.Tensor]:
    """All-gather this rank's encoded `parts`, then set `grad` (the bucket) to the mean over ranks of
    what add(grad, *a rank's parts) decodes into it. The bucket's payload is what was gathered."""
    before = counter.step.payload_bytes
    gathered = torch.futures.collect_all([counter.all_gather(part) for part in parts])
    seen.payload_bytes = counter.step.payload_bytes - before

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
    seen = counter.bucket_ready(bucket)
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
    return gather_and_average(counter, seen, grad, [values, index.to(torch.int32)],
                              lambda g, v, i: g.index_add_(0, i.long(), v))


def int8_hook(counter: ByteCounter, bucket) -> torch.futures.Future[torch.Tensor]:
    """Send the bucket as int8 with one fp32 scale."""
    seen = counter.bucket_ready(bucket)
    grad = bucket.buffer()
    scale = (grad.abs().max() / 127).clamp(min=torch.finfo(torch.float32).tiny).reshape(1)
    quantized = torch.round(grad / scale).to(torch.int8)
    return gather_and_average(counter, seen, grad, [quantized, scale], lambda g, q, s: g.add_(q.to(g.dtype) * s))


def hook_for(name: str, params: dict[str, Any], counter: ByteCounter) -> tuple[Any, Callable]:
    """(state, hook) for DDP.register_comm_hook."""
    if name == "none":
        return counter, counting_allreduce_hook
    if name == "fp16":
        return counter, default_hooks.fp16_compress_wrapper(counting_allreduce_hook)
    if name == "bf16":
        return counter, default_hooks.bf16_compress_wrapper(counting_allreduce_hook)
    if name == "powersgd":
        return powersgd(counter, params)
    if name == "topk":
        return TopKState(counter, params["ratio"]), topk_hook
    if name == "int8":
        return counter, int8_hook
    raise ValueError(f"unknown compression {name!r}")
