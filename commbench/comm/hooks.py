"""DDP communication hooks that count the bytes handed to every collective.

Counting happens at the collective (`ByteCounter.all_reduce`), not on `bucket.buffer()`, so a
compression hook that sends a smaller tensor through the same counter records what it really sends.
"""

# No `from __future__ import annotations`: DDP checks a hook's return annotation at runtime.
import time
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.distributed as dist

Future = torch.futures.Future


@dataclass
class BucketSeen:
    """One gradient bucket as the hook saw it in one step."""

    index: int
    dtype: str
    numel: int
    itemsize: int  # bytes per gradient element
    payload_bytes: int  # bytes handed to collectives for this bucket
    params: list  # the bucket's parameter tensors (resolved to layer names later)


@dataclass
class StepComm:
    """What one rank's collectives did in one step."""

    payload_bytes: int = 0
    gather_bytes: int = 0  # the part of payload_bytes handed to all-gathers (top-k, int8), not all-reduces
    collectives: int = 0
    buckets: list[BucketSeen] = field(default_factory=list)
    t_first_issue: Optional[float] = None  # first collective issued
    t_last_ready: Optional[float] = None  # last bucket's gradients ready (backward compute done)
    t_last_done: Optional[float] = None  # last collective completed


class ByteCounter:
    """State of the counting hooks: issues collectives and records their payload per step.

    With `reduce=False` (a single worker, the scaling baseline) no collective runs: the payload that
    would be exchanged is still counted, and the bucket is returned as it is.
    """

    def __init__(self, world_size: int, group=None, reduce: bool = True):
        self.world_size = world_size
        self.group = group
        self.reduce = reduce
        self.step = StepComm()

    def start_step(self) -> None:
        self.step = StepComm()

    def end_step(self) -> StepComm:
        step, self.step = self.step, StepComm()
        return step

    def issued(self, tensor: torch.Tensor, gather: bool = False) -> None:
        """Count a tensor handed to a collective (an all-reduce, or with `gather` an all-gather)."""
        now = time.perf_counter()
        if self.step.t_first_issue is None:
            self.step.t_first_issue = now
        nbytes = tensor.numel() * tensor.element_size()
        self.step.payload_bytes += nbytes
        self.step.gather_bytes += nbytes if gather else 0
        self.step.collectives += 1

    def done(self, fut: Future):
        self.step.t_last_done = time.perf_counter()
        return fut.value()

    def _completed(self, value) -> Future:
        fut: Future = Future()
        fut.set_result(value)
        return fut.then(self.done)

    def all_reduce(self, tensor: torch.Tensor) -> Future:
        """Sum `tensor` across ranks in place; the future yields [tensor]."""
        self.issued(tensor)
        if not self.reduce:
            return self._completed([tensor])
        work = dist.all_reduce(tensor, group=self.group, async_op=True)
        return work.get_future().then(self.done)

    def all_gather(self, tensor: torch.Tensor) -> Future:
        """Every rank's `tensor`; the future yields a list in rank order."""
        self.issued(tensor, gather=True)
        if not self.reduce:
            return self._completed([tensor])
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        work = dist.all_gather(out, tensor, group=self.group, async_op=True)

        def gathered(fut: Future) -> list[torch.Tensor]:
            self.done(fut)
            return out

        return work.get_future().then(gathered)

    def bucket_ready(self, bucket) -> BucketSeen:
        """Note a bucket whose gradients are ready; the hook fills in its payload after issuing."""
        self.step.t_last_ready = time.perf_counter()
        buffer = bucket.buffer()
        seen = BucketSeen(
            index=bucket.index(),
            dtype=str(buffer.dtype).removeprefix("torch."),
            numel=buffer.numel(),
            itemsize=buffer.element_size(),
            payload_bytes=0,
            params=list(bucket.parameters()),
        )
        self.step.buckets.append(seen)
        return seen


def counting_allreduce_hook(state: ByteCounter, bucket) -> torch.futures.Future[torch.Tensor]:
    """DDP's default all-reduce (average of the gradients), with every byte counted."""
    seen = state.bucket_ready(bucket)
    before = state.step.payload_bytes
    tensor = bucket.buffer().div_(state.world_size)
    fut = state.all_reduce(tensor).then(lambda f: f.value()[0])
    seen.payload_bytes = state.step.payload_bytes - before
    return fut


