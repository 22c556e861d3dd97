"""Alpha-beta cost model of all-reduce: predict, from gradient bytes, what the network costs a step.

A link costs T(n) = alpha + n * beta for an n-byte message (Hockney). Each algorithm below is
that model summed over its critical path. Pure functions (stdlib + numpy), no torch, no Ray.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np


class NetworkSpecError(ValueError):
    """A network setting that cannot be read; str() is one line naming the setting."""


# ---------------------------------------------------------------------------------------------
# Parsing link specs
# ---------------------------------------------------------------------------------------------

# ASCII digits only: \d would let float() read Arabic-Indic and other Unicode digits.
_NUMBER_UNIT = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(.*)", re.DOTALL)

_DECIMAL = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BINARY = {"ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30, "ti": 2.0**40}
_PREFIXES = {**_DECIMAL, **_BINARY}

# tc's bit units (it reads "kibit" as 1024 bit/s too); "/s" is optional after "bit"; no unit is bit/s.
_BIT_UNITS = {"": 1.0} | {f"{p}bit{s}": scale for p, scale in _PREFIXES.items() for s in ("", "/s")}

# Units per second, divided by rather than multiplied by 1e-6: 5 / 1e6 rounds to 5e-6, 5 * 1e-6 does not.
_LATENCY_PER_S = {
    "": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0,
    "ms": 1e3, "msec": 1e3, "msecs": 1e3,
    "us": 1e6, "usec": 1e6, "usecs": 1e6, "\u00b5s": 1e6, "\u03bcs": 1e6,  # micro sign, Greek mu
    "ns": 1e9, "nsec": 1e9, "nsecs": 1e9,
}

_BANDWIDTH_HINT = "write e.g. 100mbit, 10gbit or 1.25GB/s"
_LATENCY_HINT = "write e.g. 5us, 0.5ms or 2s"


def _show(text: object) -> str:
    """repr() escapes newlines, so the message stays one line; long input is cut."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _split(text: object, field: str, hint: str) -> tuple[float, str]:
    """(number, unit) of a spec; a real number passes through with an empty unit."""
    if isinstance(text, numbers.Real) and not isinstance(text, bool):
        try:
            value, unit = float(text), ""
        except OverflowError:  # an int past float's range (10**400): refused below as not finite
            value, unit = math.inf, ""
    elif isinstance(text, str) and (m := _NUMBER_UNIT.fullmatch(text.strip())):
        value, unit = float(m.group(1)), m.group(2)
    else:
        raise NetworkSpecError(f"{field}: cannot read {_show(text)}; {hint}")
    if not math.isfinite(value):
        raise NetworkSpecError(f"{field}: {_show(text)} is not a finite number; {hint}")
    return value, unit


def _ambiguous_prefix(unit: str) -> str | None:
    """The prefix of 'gbps' & co, else None: tc reads "bps" as BYTES/s, most people as bits."""
    low = unit.lower()
    if low.endswith("bps") and low[:-3] in _PREFIXES:
        return low[:-3]
    # Bytes need a capital B, so lower-case "mb/s" is as ambiguous as "mbps".
    if unit.endswith("b/s") and low[:-3] in _PREFIXES:
        return low[:-3]
    return None


def _ambiguous(number: float, prefix: str, text: object) -> NetworkSpecError:
    """The error for 'gbps' & co, with both readings of the user's own number spelled out."""
    byte_prefix = prefix[:1].upper() + prefix[1:] if prefix not in ("", "k") else prefix
    return NetworkSpecError(
        f"network.bandwidth: {_show(text)} is ambiguous (tc reads bps as bytes/s, most people as "
        f"bits/s); write {number:g}{prefix}bit (bits/s) or {number / 8:g}{byte_prefix}B/s (bytes/s)")


def _bandwidth_scale(unit: str) -> float | None:
    """Bits per second per unit, or None if the unit is unknown."""
    if unit.lower() in _BIT_UNITS:
        return _BIT_UNITS[unit.lower()]
    if unit.endswith("B/s") and unit[:-3].lower() in _PREFIXES:
        return 8 * _PREFIXES[unit[:-3].lower()]
    return None


def parse_bandwidth(text: str | int | float) -> float:
    """Link bandwidth -> bits per second.

    Bit units as tc writes them, case-insensitive: '64bit', '500kbit', '100mbit', '10Gbit', '1tbit'
    (k, m, g, t decimal; ki, mi, gi, ti binary). Byte rates need '/s' and a capital B:
    '125MB/s', '1.25GB/s', '10kB/s' (decimal, x8), 'KiB/s', 'MiB/s', 'GiB/s' (binary).
    A bare number is bits/s. 'gbps', 'mbps', 'kbps', 'bps' and 'Mb/s' are refused as ambiguous.
    """
    field = "network.bandwidth"
    number, unit = _split(text, field, _BANDWIDTH_HINT)
    if number <= 0:
        raise NetworkSpecError(f"{field}: must be > 0, got {_show(text)}")
    if (prefix := _ambiguous_prefix(unit)) is not None:
        raise _ambiguous(number, prefix, text)
    scale = _bandwidth_scale(unit)
    if scale is None:
        raise NetworkSpecError(f"{field}: cannot read {_show(text)}; {_BANDWIDTH_HINT}")
    bits_per_s = number * scale
    if not math.isfinite(bits_per_s):
        raise NetworkSpecError(f"{field}: {_show(text)} overflows a float; {_BANDWIDTH_HINT}")
    return bits_per_s


def parse_latency(text: str | int | float) -> float:
    """One-way link latency -> seconds: '5us' (or 'µs'), '0.5ms', '100ns', '2s', '1.5 ms'.

    A bare number is seconds. 0 is allowed: an ideal link with no per-message cost.
    """
    field = "network.latency"
    number, unit = _split(text, field, _LATENCY_HINT)
    if number < 0:
        raise NetworkSpecError(f"{field}: must be >= 0, got {_show(text)}")
    per_s = _LATENCY_PER_S.get(unit.lower())
    if per_s is None:
        raise NetworkSpecError(f"{field}: cannot read {_show(text)}; {_LATENCY_HINT}")
    return number / per_s + 0.0  # + 0.0 turns '-0' into 0.0


# ---------------------------------------------------------------------------------------------
# The alpha-beta model
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    """A homogeneous, full-duplex, switched network: every node has one link of this cost."""

    alpha_s: float            # per-message latency (s)
    beta_s_per_byte: float    # inverse bandwidth (s/byte)

    def __post_init__(self) -> None:
        for name in ("alpha_s", "beta_s_per_byte"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
                raise NetworkSpecError(f"Network.{name} must be a finite number >= 0, got {_show(value)}")

    @classmethod
    def from_link(cls, bandwidth: str | float, latency: str | float) -> "Network":
        """alpha = latency, beta = 8 / (bits per second)."""
        return cls(alpha_s=parse_latency(latency), beta_s_per_byte=8.0 / parse_bandwidth(bandwidth))

    @property
    def bandwidth_bits_per_s(self) -> float:
        return math.inf if self.beta_s_per_byte == 0 else 8.0 / self.beta_s_per_byte


def _log2_ceil(nodes: int) -> int:
    """ceil(log2 N) in integers: rounds of a recursive halving/doubling or tree levels."""
    return (nodes - 1).bit_length()


def _ring(n: float, nodes: int, a: float, b: float) -> float:
    # reduce-scatter then all-gather: N-1 steps each, every step moves n/N bytes
    return 2 * (nodes - 1) * a + 2 * (nodes - 1) / nodes * n * b


def _halving_doubling(n: float, nodes: int, a: float, b: float) -> float:
    # Rabenseifner: reduce-scatter by recursive halving, all-gather by recursive doubling.
    # The bandwidth term is exact for a power-of-two N and a lower bound otherwise (the extra
    # ranks must first fold into a power of two, which this model does not charge for).
    return 2 * _log2_ceil(nodes) * a + 2 * (nodes - 1) / nodes * n * b


def _tree(n: float, nodes: int, a: float, b: float) -> float:
    # binary-tree reduce then broadcast, whole message per hop, no pipelining
    return 2 * _log2_ceil(nodes) * (a + n * b)


def _ps(n: float, nodes: int, a: float, b: float) -> float:
    # One dedicated server: N workers push n bytes each through its one link, then pull n back.
    # Push and pull are sequential phases, so full duplex buys nothing.
    return 2 * (a + nodes * n * b)


def _ps_sharded(n: float, nodes: int, a: float, b: float) -> float:
    # One shard per node, owning 1/N of the parameters: each node pushes (N-1)/N n to the other
    # shards, then pulls as much back. A phase's N-1 messages go out together: one alpha each.
    return 2 * (a + (nodes - 1) / nodes * n * b)


_COST = {
    "ring": _ring,
    "halving_doubling": _halving_doubling,
    "tree": _tree,
    "ps": _ps,
    "ps_sharded": _ps_sharded,
}
ALGORITHMS: tuple[str, ...] = tuple(_COST)


def _cost(algorithm: str):
    if algorithm not in _COST:
        raise ValueError(f"unknown all-reduce algorithm {_show(algorithm)}; known: {', '.join(ALGORITHMS)}")
    return _COST[algorithm]


def allreduce_time(algorithm: str, n_bytes: float, nodes: int, net: Network) -> float:
    """Seconds for one all-reduce of n_bytes over `nodes` nodes (alpha = net.alpha_s, beta = net.beta_s_per_byte).

    ring:             2(N-1) alpha + 2(N-1)/N n beta
    halving_doubling: 2 ceil(log2 N) alpha + 2(N-1)/N n beta   (bandwidth term exact for N = 2^k)
    tree:             2 ceil(log2 N) (alpha + n beta)
    ps:               2 (alpha + N n beta)
    ps_sharded:       2 (alpha + (N-1)/N n beta)
    N = 1 costs 0.0 for every algorithm: nothing crosses a network.
    """
    cost = _cost(algorithm)
    if isinstance(nodes, bool) or not isinstance(nodes, numbers.Integral) or nodes < 1:
        raise ValueError(f"nodes must be an integer >= 1, got {_show(nodes)}")
    if not (math.isfinite(n_bytes) and n_bytes >= 0):
        raise ValueError(f"n_bytes must be a finite number >= 0, got {_show(n_bytes)}")
    if nodes == 1:
        return 0.0
    return cost(n_bytes, int(nodes), net.alpha_s, net.beta_s_per_byte)


def step_comm_time(algorithm: str, bucket_bytes: Sequence[int], nodes: int, net: Network) -> float:
    """One all-reduce per bucket, back to back: no overlap with compute nor between buckets."""
    _cost(algorithm)  # an unknown algorithm fails even with no buckets
    return sum((allreduce_time(algorithm, b, nodes, net) for b in bucket_bytes), 0.0)


def efficiency(compute_s: float, comm_s: float) -> float:
    """Weak-scaling efficiency thr(N) / (N thr(1)) = compute / (compute + comm).

    A fixed per-worker batch keeps compute constant; without overlap, comm adds to every step.
    """
    if not (math.isfinite(compute_s) and compute_s > 0):
        raise ValueError(f"compute_s must be a finite number > 0, got {_show(compute_s)}")
    if not (math.isfinite(comm_s) and comm_s >= 0):
        raise ValueError(f"comm_s must be a finite number >= 0, got {_show(comm_s)}")
    return compute_s / (compute_s + comm_s)


def predict(bucket_bytes: Sequence[int], nodes: int, net: Network,
            compute_s: float | None) -> dict[str, dict[str, float | None]]:
    """Per algorithm: comm_s, and step_s and efficiency when the compute time is known."""
    out: dict[str, dict[str, float | None]] = {}
    for algorithm in ALGORITHMS:
        comm = step_comm_time(algorithm, bucket_bytes, nodes, net)
        known = compute_s is not None
        out[algorithm] = {
            "comm_s": comm,
            "step_s": compute_s + comm if known else None,
            "efficiency": efficiency(compute_s, comm) if known else None,
        }
    return out


# ---------------------------------------------------------------------------------------------
# Measured side: nccl-tests bandwidths and fitting alpha, beta
# ---------------------------------------------------------------------------------------------

def busbw(n_bytes: float, time_s: float, nodes: int) -> tuple[float, float]:
    """(algbw, busbw) in bytes/s as nccl-tests defines them for all-reduce.

    algbw = n / t; busbw = algbw * 2(N-1)/N, the rate each link runs at in a ring: comparable
    to the link bandwidth whatever N is.
    """
    if not (math.isfinite(time_s) and time_s > 0):
        raise ValueError(f"time_s must be a finite number > 0, got {_show(time_s)}")
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {_show(nodes)}")
    algbw = n_bytes / time_s
    return algbw, algbw * 2 * (nodes - 1) / nodes


def _check_points(sizes: Sequence[float], times: Sequence[float], nodes: int) -> tuple[np.ndarray, np.ndarray]:
    if nodes < 2:
        raise ValueError(f"fit_alpha_beta needs nodes >= 2 (one node sends nothing), got {_show(nodes)}")
    n, t = np.asarray(sizes, dtype=float), np.asarray(times, dtype=float)
    if n.ndim != 1 or n.shape != t.shape:
        raise ValueError(f"sizes and times must be flat and of one length, got {n.shape} and {t.shape}")
    if len(n) < 2 or len(np.unique(n)) < 2:
        raise ValueError(f"fit_alpha_beta needs >= 2 points of distinct sizes, got {len(n)} points")
    if not (np.all(np.isfinite(n)) and np.all(n >= 0) and np.all(np.isfinite(t)) and np.all(t > 0)):
        raise ValueError("fit_alpha_beta needs finite sizes >= 0 and finite times > 0")
    return n, t


def _fit_relative(n: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(A, B) >= 0 minimising sum(((A + B n) - t) / t)^2."""
    # Relative (1/t) weights: times span decades (1 KiB .. 256 MiB), and an unweighted fit would
    # spend all its effort on the largest messages and leave alpha to noise.
    x = np.column_stack([1.0 / t, n / t])
    (a, b), *_ = np.linalg.lstsq(x, np.ones_like(t), rcond=None)
    # Clamp at 0 and refit the other parameter alone (1-D least squares on the same weights).
    if a < 0:
        a, b = 0.0, float(np.sum(x[:, 1]) / np.sum(x[:, 1] ** 2))
    elif b < 0:
        a, b = float(np.sum(x[:, 0]) / np.sum(x[:, 0] ** 2)), 0.0
    return float(a), float(b)


def fit_alpha_beta(sizes: Sequence[float], times: Sequence[float], nodes: int) -> dict[str, float]:
    """Fit the ring model T(n) = 2(N-1) alpha + 2(N-1)/N n beta to measured all-reduce times.

    Returns alpha_s, beta_s_per_byte, bandwidth_bits_per_s (8 / beta), r2, max_rel_error
    (max |pred - meas| / meas) and points. r2 is weighted like the fit (1/t^2), so the small
    messages count in it as much as the large.
    """
    n, t = _check_points(sizes, times, nodes)
    intercept, slope = _fit_relative(n, t)
    alpha = intercept / (2 * (nodes - 1))
    beta = slope / (2 * (nodes - 1) / nodes)
    pred = intercept + slope * n
    w = 1.0 / t**2
    t_mean = np.sum(w * t) / np.sum(w)
    ss_tot = float(np.sum(w * (t - t_mean) ** 2))
    ss_res = float(np.sum(w * (t - pred) ** 2))
    return {
        "alpha_s": alpha,
        "beta_s_per_byte": beta,
        "bandwidth_bits_per_s": math.inf if beta == 0 else 8.0 / beta,
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0,
        "max_rel_error": float(np.max(np.abs(pred - t) / t)),
        "points": len(t),
    }


def relative_error(predicted: float, measured: float) -> float:
    """(pred - meas) / meas: positive when the model is pessimistic."""
    if measured == 0:
        raise ValueError("relative_error of a measured value of 0")
    return (predicted - measured) / measured


def latest_fits(busbw_records: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The newest alpha-beta fit per number of ranks, from busbw.jsonl's records."""
    return {r["nodes"]: r["fit"] for r in busbw_records if r.get("kind") == "busbw" and r.get("fit")}


def validation_rows(fits: dict[int, dict[str, Any]], replays: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measured vs predicted: each comm-only replay (newest per model and N) against the ring model
    with the busbw fit at the same N."""
    newest = {(r["model"], r["nodes"]): r for r in replays}
    rows = []
    for (model, nodes), r in sorted(newest.items()):
        if nodes not in fits:
            continue
        net = Network(fits[nodes]["alpha_s"], fits[nodes]["beta_s_per_byte"])
        predicted = step_comm_time("ring", r["bucket_bytes"], nodes, net)
        rows.append({"model": model, "nodes": nodes, "payload_bytes": r["payload_bytes"],
                     "measured_s": r["comm_time_s"], "predicted_s": predicted,
                     "error": relative_error(predicted, r["comm_time_s"])})
    return rows
