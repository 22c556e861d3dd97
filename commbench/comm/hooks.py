"""DDP communication hooks that count the bytes handed to every collective and stamp when it happened.

Counting happens at the collective (`ByteCounter.all_reduce`, `.all_gather`), not on `bucket.buffer()`,
so a compression hook that sends a smaller tensor through the same counter records what it really
sends. `timed` wraps every hook: it stamps when the bucket's gradients were ready (the hook is
entered), when its first collective was issued (encoding done) and when its future finished
(decoding done); each collective's [issue, done] is stamped too. Stamps come from the counter's clock
(host time on CPU, CUDA events on a GPU: see clocks.py); the worker turns them into seconds once per step.
"""

# No `from __future__ import annotations`: DDP checks a hook's return annotation at runtime.
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.distributed as dist

from commbench.comm.clocks import HostClock

Future = torch.futures.Future


@dataclass
class BucketSeen:
    """One gradient bucket as the hook saw it in one step."""

    index: int
    dtype: str  # of the first tensor handed to a collective (fp16 for the fp16 scheme)
    numel: int
    itemsize: int  # bytes per gradient element
    payload_bytes: int  # bytes handed to collectives for this bucket
    params: list  # the bucket's parameter tensors (resolved to layer names later)
    ready: Any = None  # stamp: the hook was entered (the bucket's gradients are ready)
    issued: Any = None  # stamp: its first collective was issued (encoding done)
    final: Any = None  # stamp: its future finished (decoding done)


@dataclass
class StepComm:
    """What one rank's collectives did in one step."""

    payload_bytes: int = 0
    gather_bytes: int = 0  # the part of payload_bytes handed to all-gathers (top-k, int8), not all-reduces
    collectives: int = 0
    buckets: list[BucketSeen] = field(default_factory=list)
    spans: list[list] = field(default_factory=list)  # per collective: [issue stamp, done stamp or None]


class ByteCounter:
    """State of the counting hooks: issues collectives and records their payload and stamps per step.

    With `reduce=False` (a single worker, the scaling baseline) no collective runs: the payload that
    would be exchanged is still counted, and the bucket is returned as it is.
    """

    def __init__(self, world_size: int, group=None, reduce: bool = True, clock=None):
        self.world_size = world_size
        self.group = group
        self.reduce = reduce
        self.clock = clock or HostClock()
        self.step = StepComm()

    def start_step(self) -> None:
        self.step = StepComm()

    def end_step(self) -> StepComm:
        step, self.step = self.step, StepComm()
        return step

    def issued(self, tensor: torch.Tensor, gather: bool = False) -> list:
        """Count a tensor handed to a collective (an all-reduce, or with `gather` an all-gather);
        the collective's [issue, done] span, done filled in by `done_of`."""
        span = [self.clock.stamp(), None]
        self.step.spans.append(span)
        seen = self.step.buckets[-1] if self.step.buckets else None
        if seen is not None and seen.issued is None:
            seen.issued, seen.dtype = span[0], str(tensor.dtype).removeprefix("torch.")
        nbytes = tensor.numel() * tensor.element_size()
        self.step.payload_bytes += nbytes
        self.step.gather_bytes += nbytes if gather else 0
        self.step.collectives += 1
        return span

    def done_of(self, span: list) -> Callable[[Future], Any]:
        def done(fut: Future):
            span[1] = self.clock.stamp()
            return fut.value()
        return done

    def _completed(self, value, span: list) -> Future:
        fut: Future = Future()
        fut.set_result(value)
        return fut.then(self.done_of(span))

    def all_reduce(self, tensor: torch.Tensor) -> Future:
        """Sum `tensor` across ranks in place; the future yields [tensor]."""
        span = self.issued(tensor)
        if not self.reduce:
            return self._completed([tensor], span)
        work = dist.all_reduce(tensor, group=self.group, async_op=True)
        return work.get_future().then(self.done_of(span))

    def all_gather(self, tensor: torch.Tensor) -> Future:
        """Every rank's `tensor`; the future yields a list in rank order."""
        span = self.issued(tensor, gather=True)
        if not self.reduce:
            return self._completed([tensor], span)
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        work = dist.all_gather(out, tensor, group=self.group, async_op=True)
        done = self.done_of(span)

        def gathered(fut: Future) -> list[torch.Tensor]:
            done(fut)
            return out

        return work.get_future().then(gathered)

    def bucket_ready(self, bucket) -> BucketSeen:
        """Note a bucket whose gradients are ready; `timed` fills in its payload."""
        buffer = bucket.buffer()
        seen = BucketSeen(index=bucket.index(), dtype=str(buffer.dtype).removeprefix("torch."), numel=buffer.numel(),
                          itemsize=buffer.element_size(), payload_bytes=0, params=list(bucket.parameters()),
                          ready=self.clock.stamp())
        self.step.buckets.append(seen)
        return seen


def timed(hook: Callable, counter: ByteCounter, late_collectives: bool = False) -> Callable:
    """`hook` with its bucket noted, its payload counted and its ready / issued / final stamps taken.
    The payload is what the hook issued before returning; with `late_collectives` (PowerSGD issues
    more from its callbacks) what was issued until its future finished, exact only with one bucket in
    flight: the plan gives PowerSGD a single bucket (schemes.SINGLE_BUCKET_MB)."""

    def run(state, bucket) -> torch.futures.Future[torch.Tensor]:
        seen = counter.bucket_ready(bucket)
        before = counter.step.payload_bytes
        fut = hook(state, bucket)
        seen.payload_bytes = counter.step.payload_bytes - before

        def finished(f: Future) -> torch.Tensor:
            seen.final = counter.clock.stamp()
            if late_collectives:
                seen.payload_bytes = counter.step.payload_bytes - before
            return f.value()

        return fut.then(finished)

    return run


def counting_allreduce_hook(state: ByteCounter, bucket) -> torch.futures.Future[torch.Tensor]:
    """DDP's default all-reduce (average of the gradients), with every byte counted."""
    tensor = bucket.buffer().div_(state.world_size)
    return state.all_reduce(tensor).then(lambda f: f.value()[0])
