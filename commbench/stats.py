"""Per-step figures of every rank -> the run's summary numbers (pure functions, a leaf)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from commbench.split import STEP_FIELDS, step_split


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ring_sent_bytes(payload: int, nodes: int) -> int:
    """Bytes each rank sends in a ring all-reduce of `payload` bytes: 2(N-1)/N x payload."""
    return 0 if nodes <= 1 else round(2 * (nodes - 1) * payload / nodes)


def ring_gather_sent_bytes(payload: int, nodes: int) -> int:
    """Bytes each rank sends in a ring all-gather of its `payload` bytes: (N-1) x payload."""
    return 0 if nodes <= 1 else (nodes - 1) * payload


def the_same(ranks: list[dict[str, Any]], key: str) -> int:
    """A per-step byte count every rank and step agree on (collectives of different sizes would
    not have matched up)."""
    values = {s.get(key, 0) for r in ranks for s in r["steps"]}
    if len(values) != 1:
        raise ValueError(f"ranks handed different {key} bytes to their collectives: {sorted(values)}")
    return values.pop()


def elementwise_max(series: list[list[float]]) -> list[float]:
    """Per iteration, the slowest rank's value: a synchronous step or collective is as slow as its
    slowest rank. `series` holds one list per rank."""
    return [max(values) for values in zip(*series)]


def per_step(ranks: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The split of every timed step over all ranks (split.step_split), as one series per field."""
    steps = [step_split(list(at)) for at in zip(*(r["steps"] for r in ranks))]
    return {name: [s[name] for s in steps] for name in STEP_FIELDS}


def summarize(ranks: list[dict[str, Any]], nodes: int, batch_size: int) -> dict[str, Any]:
    """Median and p90 over steps of each field of the per-step split; the bytes every rank agreed on."""
    series = per_step(ranks)
    out: dict[str, Any] = {}
    for name, values in series.items():
        out[name] = percentile(values, 50)
        out[name.removesuffix("_s") + "_p90_s"] = percentile(values, 90)
    payload, gathered = (the_same(ranks, key) for key in ("payload", "gather_payload"))
    out["grad_bytes_per_step"] = payload
    out["sent_bytes_per_step"] = ring_sent_bytes(payload - gathered, nodes) + ring_gather_sent_bytes(gathered, nodes)
    out["buffer_bytes_per_step"] = max(s["buffer_bytes"] for r in ranks for s in r["steps"])
    out["collectives_per_step"] = ranks[0]["steps"][0]["collectives"]
    out["throughput"] = nodes * batch_size / out["step_time_s"]
    return out


def layer_bytes(buckets: list[dict[str, Any]]) -> dict[str, int]:
    """Gradient bytes per layer over all buckets, largest first."""
    total: dict[str, int] = {}
    for bucket in buckets:
        for layer, nbytes in bucket["layers"].items():
            total[layer] = total.get(layer, 0) + nbytes
    return largest_first(total)


def largest_first(layers: dict[str, int]) -> dict[str, int]:
    """Records store JSON with sorted keys, so order is restored on reading."""
    return dict(sorted(layers.items(), key=lambda kv: (-kv[1], kv[0])))
