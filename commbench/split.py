"""Where a step's time goes, from its clock points (seconds from the step's start). Pure functions, a leaf.

Per rank: forward | backward compute | codec | exposed comm | optimizer partition the step:
  forward   = backward start - buffer broadcast (DDP syncs BatchNorm buffers in forward: communication)
  backward  = last bucket ready - backward start - encoding done before it
  codec     = encoding (hook entry -> first collective issued, on the autograd thread) + decoding
              that runs after the last collective was issued (then nothing else can hide it)
  exposed   = the rest of the step: buffer broadcast, the wait for outstanding collectives
  optimizer = backward end -> step end
Across ranks, per step: the step is the slowest rank's; compute (forward + backward), codec and
optimizer are the rank's with the most compute; exposed = step - compute - codec - optimizer, so the
split adds up by construction and a slow rank's extra compute is imbalance, not communication.
busy = the union of the collectives' [issue, done] and the buffer broadcasts; overlap = busy - exposed,
within [0, busy]. `events` keeps the clock points themselves, for the step's timeline (a Gantt chart).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

Interval = tuple[float, float]


def union(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[list[float]] = []
    for a, b in sorted((a, b) for a, b in intervals if b > a):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def length(intervals: Iterable[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def clip(intervals: Iterable[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]


def minus(interval: Interval, cover: Sequence[Interval]) -> list[Interval]:
    """`interval` without the parts `cover` (a union) covers."""
    out, start = [], interval[0]
    for a, b in cover:
        if b <= start or a >= interval[1]:
            continue
        if a > start:
            out.append((start, a))
        start = max(start, b)
    if start < interval[1]:
        out.append((start, interval[1]))
    return out


def rank_split(backward_start: float, backward_end: float, end: float, buffers: Sequence[Interval],
               buckets: Sequence[tuple[float, float, float]], spans: Sequence[Interval],
               communicated: bool = True) -> dict[str, Any]:
    """One rank's step. buckets: (ready, issued, final) per bucket in hook order; spans: every
    collective's (issue, done); buffers: the buffer broadcasts' (start, end). Without communication
    (nodes=1: the hook counts but sends nothing) nothing is exposed: the tail of backward after the
    last bucket is DDP's own bookkeeping, compute."""
    buffer = length(union(buffers))
    forward = backward_start - buffer
    if buckets:
        last_ready = max(b[0] for b in buckets)
        last_issue = max(b[1] for b in buckets)
        encode = sum(b[1] - b[0] for b in buckets)
        encode_after_last_ready = sum(max(0.0, b[1] - max(b[0], last_ready)) for b in buckets)
    else:  # no gradients (nothing trains): the whole backward is compute
        last_ready = last_issue = backward_end
        encode = encode_after_last_ready = 0.0
    backward = last_ready - backward_start - (encode - encode_after_last_ready)
    if not communicated:
        backward, spans = backward_end - backward_start - encode, []
        last_issue = backward_end
    busy = union([*spans, *buffers])
    decode = [piece for b in buckets for piece in minus((b[1], b[2]), busy)]
    codec = encode + length(clip(union(decode), last_issue, backward_end))
    optimizer = end - backward_end
    return {"step": end, "forward": forward, "backward": backward, "compute": forward + backward,
            "codec": codec, "buffer": buffer, "optimizer": optimizer,
            "wait": end - forward - backward - codec - optimizer, "busy": length(clip(busy, 0.0, end)),
            "ready_offsets": [b[0] - backward_start for b in buckets],
            "events": {"backward_start": backward_start, "backward_end": backward_end, "end": end,
                       "buckets": [list(b) for b in buckets], "collectives": [list(s) for s in spans],
                       "buffers": [list(b) for b in buffers]}}


STEP_FIELDS = ("step_time_s", "forward_time_s", "backward_time_s", "compute_time_s", "codec_time_s",
               "buffer_time_s", "exposed_comm_s", "optimizer_time_s", "imbalance_s", "comm_busy_s", "overlap_s")


def step_split(ranks: Sequence[dict[str, Any]]) -> dict[str, float]:
    """One step over all ranks (each a rank_split); the STEP_FIELDS."""
    slowest = max(ranks, key=lambda r: r["compute"])
    step = max(r["step"] for r in ranks)
    exposed = step - slowest["compute"] - slowest["codec"] - slowest["optimizer"]
    busy = slowest["busy"]
    return {"step_time_s": step, "forward_time_s": slowest["forward"], "backward_time_s": slowest["backward"],
            "compute_time_s": slowest["compute"], "codec_time_s": slowest["codec"],
            "buffer_time_s": slowest["buffer"], "exposed_comm_s": exposed,
            "optimizer_time_s": slowest["optimizer"],
            "imbalance_s": slowest["compute"] - min(r["compute"] for r in ranks),
            "comm_busy_s": busy, "overlap_s": min(busy, max(0.0, busy - exposed))}


def median_step(ranks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The timed step whose time (its slowest rank's) is the median (of an even count, the lower of the
    two middle ones: a step that happened), as every rank lived it: its index and per rank its events
    (rank_split's clock points, seconds from that rank's step start)."""
    steps = [max(at, key=lambda r: r["step"])["step"] for at in zip(*(r["steps"] for r in ranks))]
    k = sorted(range(len(steps)), key=steps.__getitem__)[(len(steps) - 1) // 2]
    return {"step": k, "step_s": steps[k], "ranks": [{"rank": r["rank"], **r["steps"][k]["events"]} for r in ranks]}
