"""Compression schemes and their parameters, without torch: the plan validates them before Ray starts,
and the results layer knows which schemes send all-gathers rather than all-reduces."""

from __future__ import annotations

from typing import Any, Callable

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

# Schemes whose hooks all-gather every rank's encoded bucket: bytes sent per rank grow with (N-1).
ALL_GATHER = frozenset({"topk", "int8"})


# Schemes whose recorded buckets a replay can send again as they were: one all-reduce of a known dtype
# each (PowerSGD's payload is factors computed per step, in several all-reduces).
REPLAYABLE = frozenset({"none", "fp16", "bf16"})


def collective_of(scheme: str) -> str:
    """The collective a scheme's buckets go through."""
    return "all_gather" if scheme in ALL_GATHER else "all_reduce"
