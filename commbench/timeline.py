"""A training step simulated from its trace: buckets become ready at their recorded offsets, each
bucket's collective starts when it is ready and a channel is free, and the step ends when backward and
the last collective have both ended. Pure functions (stdlib): no torch, no Ray, no records' files.

    step    = forward + backward + codec + exposed + optimizer
    exposed = max(0, last collective's end - (backward + codec))     (times from backward start)
    predicted step = step + ddp + interference + straggler            (overheads.py, when given)

A collective's cost splits into a latency part (cost(0): its alphas, which concurrent collectives
pay side by side) and a bandwidth part (cost(n) - cost(0)), which the collectives running at once
share equally: the link is work-conserving, so bytes queue on it whatever the concurrency.
`channels` is how many collectives the backend runs at once: NCCL one per stream (1), gloo a pool of
worker threads (torch's ProcessGroupGloo default: 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from commbench.netmodel import ALGORITHMS, Cluster, allreduce_time
from commbench.overheads import Overheads, costs

CHANNELS = {"gloo": 2, "nccl": 1}


@dataclass(frozen=True)
class Trace:
    """One rank's step profile: compute times and, per bucket in issue order, payload and ready offset."""

    forward_s: float
    backward_s: float
    codec_s: float
    optimizer_s: float
    buckets: tuple[int, ...]     # payload bytes per bucket, in the order the hooks ran
    ready_s: tuple[float, ...]   # when each became ready, from backward start

    def __post_init__(self) -> None:
        if len(self.buckets) != len(self.ready_s):
            raise ValueError(f"{len(self.buckets)} buckets but {len(self.ready_s)} ready offsets")
        for name in ("forward_s", "backward_s", "codec_s", "optimizer_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"trace {name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if not all(math.isfinite(r) and r >= 0 for r in self.ready_s):
            raise ValueError(f"trace ready offsets must be finite numbers >= 0, got {list(self.ready_s)!r}")

    @property
    def compute_s(self) -> float:
        """The step with no communication: what one rank alone takes."""
        return self.forward_s + self.backward_s + self.codec_s + self.optimizer_s

    def scaled(self, factor: float) -> "Trace":
        """Every compute time and offset times `factor` (0.1: a device 10x faster); bytes unchanged."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"compute scale must be a finite number > 0, got {factor!r}")
        return replace(self, forward_s=self.forward_s * factor, backward_s=self.backward_s * factor,
                       codec_s=self.codec_s * factor, optimizer_s=self.optimizer_s * factor,
                       ready_s=tuple(r * factor for r in self.ready_s))

    def to_step(self, step_s: float) -> "Trace":
        """The same profile scaled to a step of `step_s` seconds without communication."""
        return self.scaled(step_s / self.compute_s)

    @classmethod
    def of_record(cls, record: dict[str, Any], rank: int = 0) -> "Trace":
        """The trace a run's record holds (record.trace): rank `rank`'s medians, buckets in hook order."""
        trace = record["trace"]
        ranks = sorted(trace["ranks"], key=lambda r: r["rank"])
        me = ranks[rank % len(ranks)]
        return cls(me["forward_s"], me["backward_s"], me["codec_s"], me["optimizer_s"],
                   tuple(b["payload_bytes"] for b in trace["buckets"]), tuple(me["ready_offsets_s"]))

    @classmethod
    def all_at_end(cls, buckets: Sequence[int], compute_s: float) -> "Trace":
        """No profile known: every bucket ready when compute ends (nothing overlaps)."""
        return cls(0.0, compute_s, 0.0, 0.0, tuple(buckets), tuple(compute_s for _ in buckets))

    @classmethod
    def profile(cls, buckets: Sequence[int], compute_s: float, done: Sequence[float] | None = None) -> "Trace":
        """A step known only by its length: backward twice forward (it computes two products per
        forward one: the gradients of the inputs and of the weights), and each bucket ready once
        backward has done `done` of its work (comm.buckets: by the FLOPs behind it), else its share of
        the gradient bytes, in bucket order."""
        backward = compute_s * 2 / 3
        if done is None:
            total = sum(buckets) or 1
            done = [sum(buckets[:i + 1]) / total for i in range(len(buckets))]
        return cls(compute_s / 3, backward, 0.0, 0.0, tuple(buckets), tuple(backward * d for d in done))


def collective_ends(ready: Sequence[float], latency: Sequence[float], work: Sequence[float],
                    channels: int = 1) -> list[float]:
    """When each collective ends (collective_spans)."""
    return [end for _, end in collective_spans(ready, latency, work, channels)]


def collective_spans(ready: Sequence[float], latency: Sequence[float], work: Sequence[float],
                     channels: int = 1) -> list[tuple[float, float]]:
    """When each collective starts and ends. Collective i is admitted (in order) when it is ready and
    fewer than `channels` run; it spends latency[i] on its own, then work[i] seconds of the link shared
    equally with the others then in their bandwidth part. channels=1: end = max(ready, previous end) + cost."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels!r}")
    starts: list[float] = [math.nan] * len(ready)
    ends: list[float] = [math.nan] * len(ready)
    waiting = sorted(range(len(ready)), key=lambda i: (ready[i], i))
    running: dict[int, list[float]] = {}  # index -> [latency left, work left]
    t = 0.0
    while waiting or running:
        while waiting and len(running) < channels and ready[waiting[0]] <= t:
            i = waiting.pop(0)
            running[i], starts[i] = [latency[i], work[i]], t
        sharing = sum(1 for left in running.values() if left[0] <= 0)
        steps = [left[0] if left[0] > 0 else left[1] * sharing for left in running.values()]
        if waiting and len(running) < channels:
            steps.append(ready[waiting[0]] - t)
        dt = max(0.0, min(steps))
        t += dt
        for i, left in list(running.items()):
            if left[0] > 0:
                left[0] -= dt
            else:
                left[1] -= dt / sharing
            if left[0] <= 1e-15 and left[1] <= 1e-15 * max(1.0, work[i]):
                ends[i] = t
                del running[i]
            elif left[0] <= 1e-15:
                left[0] = 0.0
    return list(zip(starts, ends))


def simulate(trace: Trace, cost: Callable[[int], float], channels: int = 1) -> dict[str, Any]:
    """The step of `trace` when a bucket of n bytes costs cost(n) seconds: step, exposed comm, busy
    (from the first issue to the last end), the no-overlap bound (every collective after compute), and
    each collective's (start, end) from backward start."""
    latency = [cost(0) for _ in trace.buckets]
    work = [cost(n) - cost(0) for n in trace.buckets]
    spans = collective_spans(trace.ready_s, latency, work, channels)
    ends = [end for _, end in spans]
    compute_end = trace.backward_s + trace.codec_s
    exposed = max(0.0, max(ends, default=0.0) - compute_end)
    total = sum(cost(n) for n in trace.buckets)
    return {"step_s": trace.compute_s + exposed, "exposed_comm_s": exposed, "comm_s": total,
            "comm_busy_s": max(ends, default=0.0) - min(trace.ready_s, default=0.0),
            "no_overlap_step_s": trace.compute_s + total, "spans": spans}


def predict(trace: Trace, nodes: int, cluster: Cluster, channels: int = 1, overheads: Overheads = Overheads(),
            tensors: int = 0) -> dict[str, dict[str, float]]:
    """Per all-reduce algorithm: the simulated step plus what real clusters add (overheads.py, `tensors`
    gradient tensors), its exposed comm and efficiency (compute / step, weak scaling), and the
    no-overlap bound (every collective after compute; DDP and stragglers added, no interference)."""
    first = min(trace.ready_s, default=trace.backward_s)
    extra = costs(trace.compute_s, trace.backward_s, first, tensors, nodes, overheads)
    beside = extra["ddp_s"] + extra["straggler_s"]
    out = {}
    for algorithm in ALGORITHMS:
        sim = simulate(trace, lambda n, a=algorithm: allreduce_time(a, n, nodes, cluster), channels)
        step, bound = sim["step_s"] + beside + extra["interference_s"], sim["no_overlap_step_s"] + beside
        known = trace.compute_s > 0
        sim.pop("spans")  # the collectives one by one: results/steps.py draws them from simulate
        out[algorithm] = {**sim, **extra, "step_s": step, "no_overlap_step_s": bound,
                          "efficiency": trace.compute_s / step if known else None,
                          "no_overlap_efficiency": trace.compute_s / bound if known else None}
    return out
