"""topk: the largest |g| fraction `ratio` of each bucket, with error feedback (what was left out is added
to the next step); values (fp32) and indices (int32) all-gathered, summed on every rank."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from commbench.comm.schemes import Param, Scheme, is_number


def k_of(ratio: float, n: int) -> int:
    """Entries sent of a bucket of n."""
    return max(1, math.ceil(ratio * n))


@dataclass
class TopKState:
    counter: Any  # the ByteCounter
    ratio: float
    residuals: dict = field(default_factory=dict)  # bucket index -> what it left out (error feedback)


def hook(counter: Any, params: Mapping[str, Any]) -> tuple[Any, Callable]:
    import torch

    from commbench.comm.compression import gather_and_average

    def topk_hook(state: TopKState, bucket):
        """Send the k = ceil(ratio x n) largest-magnitude entries (plus what earlier steps left out)."""
        grad = bucket.buffer()
        residual = state.residuals.get(bucket.index())
        if residual is not None and residual.numel() != grad.numel():
            residual = None  # DDP rebuilt its buckets after the first step: bucket i is another bucket now
        acc = grad + residual if residual is not None else grad.clone()
        index = acc.abs().topk(k_of(state.ratio, acc.numel()), sorted=False).indices
        values = acc[index]
        acc[index] = 0
        state.residuals[bucket.index()] = acc
        return gather_and_average(state.counter, grad, [values, index.to(torch.int32)],
                                  lambda g, v, i: g.index_add_(0, i.long(), v))

    return TopKState(counter, params["ratio"]), topk_hook


def warmup_check(warmup: int, params: Mapping[str, Any]) -> Optional[str]:
    if warmup < 2:
        return (f"compression=topk needs warmup >= 2, got {warmup}: its error feedback is rebuilt with "
                "DDP's buckets after step 1, so the first timed step would send without it")
    return None


SCHEME = Scheme(
    name="topk", order=4, summary="largest ratio of entries, all-gathered", hook=hook,
    bucket_bytes=lambda n, params: k_of(params["ratio"], n) * (4 + 4),  # fp32 values + int32 indices
    params={"ratio": Param(lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]")},
    collective="all_gather", label_param="ratio", warmup_check=warmup_check)
