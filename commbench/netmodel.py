"""Alpha-beta cost model of all-reduce: predict, from gradient bytes, what the network costs a step.

A link costs T(n) = alpha + n * beta for an n-byte message (Hockney). Each algorithm below is
that model summed over its critical path; the measured side fits alpha and beta to busbw points.
Pure functions (stdlib + numpy): no torch, no Ray, no records.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from commbench.units import NetworkSpecError, parse_bandwidth, parse_latency, show


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
                raise NetworkSpecError(f"Network.{name} must be a finite number >= 0, got {show(value)}")

    @classmethod
    def from_link(cls, bandwidth: str | float, latency: str | float) -> "Network":
        """alpha = latency, beta = 8 / (bits per second)."""
        return cls(alpha_s=parse_latency(latency), beta_s_per_byte=8.0 / parse_bandwidth(bandwidth))

    @property
    def bandwidth_bits_per_s(self) -> float:
        return math.inf if self.beta_s_per_byte == 0 else 8.0 / self.beta_s_per_byte


@dataclass(frozen=True)
class Cluster:
    """Where the ranks sit: `ranks_per_node` ranks per node share an intra-node link (`intra`; None:
    the same as `inter`) and the node's one inter-node link (`inter`). ranks_per_node=1: a flat network."""

    inter: Network
    intra: Network | None = None
    ranks_per_node: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.ranks_per_node, bool) or not isinstance(self.ranks_per_node, numbers.Integral) \
                or self.ranks_per_node < 1:
            raise NetworkSpecError(f"ranks per node must be an integer >= 1, got {show(self.ranks_per_node)}")

    def link(self, nodes: int) -> Network:
        """The link a synchronous step of an algorithm unaware of the hierarchy waits for: the
        inter-node one as soon as the ranks span nodes (a step ends when its slowest hop does)."""
        if nodes <= self.ranks_per_node and self.intra is not None:
            return self.intra
        return self.inter


def _log2_ceil(nodes: int) -> int:
    """ceil(log2 N) in integers: rounds of a recursive halving/doubling or tree levels."""
    return (nodes - 1).bit_length()


def _ring(n: float, nodes: int, c: Cluster) -> float:
    """Ring (Patarasuk & Yuan 2009): reduce-scatter then all-gather, N-1 steps each, every step
    moves n/N bytes to the next rank: 2(N-1) alpha + 2(N-1)/N n beta, on the slowest hop's link."""
    a, b = c.link(nodes).alpha_s, c.link(nodes).beta_s_per_byte
    return 2 * (nodes - 1) * a + 2 * (nodes - 1) / nodes * n * b


def _hierarchical_ring(n: float, nodes: int, c: Cluster) -> float:
    """Hierarchical ring (G ranks per node, M = N/G nodes): intra-node reduce-scatter, G rings of
    n/G across the nodes at once (sharing each node's one link: 2(M-1)/M n bytes through it), intra
    all-gather: 2(G-1)(alpha_i + n/G beta_i) + 2(M-1) alpha + 2(M-1)/M n beta. G=1: the ring."""
    g = min(c.ranks_per_node, nodes)
    if g == 1:
        return _ring(n, nodes, c)
    m = math.ceil(nodes / g)
    intra = c.intra or c.inter
    inner = 2 * (g - 1) * (intra.alpha_s + n / g * intra.beta_s_per_byte)
    outer = 2 * (m - 1) * c.inter.alpha_s + 2 * (m - 1) / m * n * c.inter.beta_s_per_byte
    return inner + outer


def _halving_doubling(n: float, nodes: int, c: Cluster) -> float:
    """Recursive halving reduce-scatter, recursive doubling all-gather (Rabenseifner; Thakur,
    Rabenseifner & Gropp 2005) over p = 2^floor(log2 N) ranks: 2 log2(p) alpha + 2(p-1)/p n beta.
    N not a power of two: MPICH's fold, the N - p extra ranks first hand their whole vector to a
    partner and get the result back at the end: + 2(alpha + n beta)."""
    a, b = c.link(nodes).alpha_s, c.link(nodes).beta_s_per_byte
    p = 1 << (nodes.bit_length() - 1)
    fold = 0.0 if p == nodes else 2 * (a + n * b)
    return 2 * (p.bit_length() - 1) * a + 2 * (p - 1) / p * n * b + fold


def _binomial_tree(n: float, nodes: int, c: Cluster) -> float:
    """Binomial-tree reduce then broadcast, the whole message per level, not pipelined:
    2 ceil(log2 N) (alpha + n beta)."""
    a, b = c.link(nodes).alpha_s, c.link(nodes).beta_s_per_byte
    return 2 * _log2_ceil(nodes) * (a + n * b)


def _double_binary_tree(n: float, nodes: int, c: Cluster) -> float:
    """NCCL's double binary tree (NCCL 2.4; Sanders, Speck & Traeff 2009): two trees, each rank a leaf
    in one and inner in the other, each tree carrying half the message, reduce then broadcast, each
    pipelined over k chunks: 2 (L + k - 1)(alpha + n beta / k), L = ceil(log2 N), k chosen best
    (k = sqrt((L-1) n beta / alpha)); as k grows, 2 n beta, whatever N."""
    a, b = c.link(nodes).alpha_s, c.link(nodes).beta_s_per_byte
    depth = _log2_ceil(nodes)
    if depth == 1 or n * b == 0:
        return 2 * depth * (a + n * b)
    if a == 0:
        return 2 * n * b
    best = max(1.0, math.sqrt((depth - 1) * n * b / a))
    return min(2 * (depth + k - 1) * (a + n * b / k) for k in {math.floor(best), math.ceil(best)} if k >= 1)


def _ps(n: float, nodes: int, c: Cluster) -> float:
    """One dedicated parameter server: N workers push n bytes each through its one link, then pull
    n back; its N messages per phase queue on that link, each paying alpha: 2 N (alpha + n beta)."""
    a, b = c.link(nodes).alpha_s, c.link(nodes).beta_s_per_byte
    return 2 * nodes * (a + n * b)


def _ps_sharded(n: float, nodes: int, c: Cluster) -> float:
    """One shard per node owning 1/N of the parameters: each node pushes n/N to each of the N-1
    other shards, then pulls as much back; N-1 messages per phase, each paying alpha:
    2 (N-1)(alpha + n/N beta) (the ring's cost: the same bytes, the same messages)."""
    a, b = c.link(nodes).alpha_s, c.link(nodes).beta_s_per_byte
    return 2 * (nodes - 1) * (a + n / nodes * b)


_COST = {
    "ring": _ring,
    "hierarchical_ring": _hierarchical_ring,
    "double_binary_tree": _double_binary_tree,
    "halving_doubling": _halving_doubling,
    "binomial_tree": _binomial_tree,
    "ps": _ps,
    "ps_sharded": _ps_sharded,
}
ALGORITHMS: tuple[str, ...] = tuple(_COST)


def _cost(algorithm: str):
    if algorithm not in _COST:
        raise ValueError(f"unknown all-reduce algorithm {show(algorithm)}; known: {', '.join(ALGORITHMS)}")
    return _COST[algorithm]


def allreduce_time(algorithm: str, n_bytes: float, nodes: int, net: "Network | Cluster") -> float:
    """Seconds for one all-reduce of n_bytes over `nodes` ranks; each algorithm's formula is in its
    docstring (alpha: per-message latency, beta: seconds per byte). A Network is a flat Cluster.
    N = 1 costs 0.0 for every algorithm: nothing crosses a network."""
    cost = _cost(algorithm)
    if isinstance(nodes, bool) or not isinstance(nodes, numbers.Integral) or nodes < 1:
        raise ValueError(f"nodes must be an integer >= 1, got {show(nodes)}")
    if not (math.isfinite(n_bytes) and n_bytes >= 0):
        raise ValueError(f"n_bytes must be a finite number >= 0, got {show(n_bytes)}")
    if nodes == 1:
        return 0.0
    return cost(n_bytes, int(nodes), net if isinstance(net, Cluster) else Cluster(net))


def step_comm_time(algorithm: str, bucket_bytes: Sequence[int], nodes: int, net: "Network | Cluster") -> float:
    """One all-reduce per bucket, back to back: no overlap with compute nor between buckets."""
    _cost(algorithm)  # an unknown algorithm fails even with no buckets
    return sum((allreduce_time(algorithm, b, nodes, net) for b in bucket_bytes), 0.0)


def efficiency(compute_s: float, comm_s: float) -> float:
    """Weak-scaling efficiency thr(N) / (N thr(1)) = compute / (compute + comm).

    A fixed per-worker batch keeps compute constant; without overlap, comm adds to every step.
    """
    if not (math.isfinite(compute_s) and compute_s > 0):
        raise ValueError(f"compute_s must be a finite number > 0, got {show(compute_s)}")
    if not (math.isfinite(comm_s) and comm_s >= 0):
        raise ValueError(f"comm_s must be a finite number >= 0, got {show(comm_s)}")
    return compute_s / (compute_s + comm_s)


# ---------------------------------------------------------------------------------------------
# Measured side: nccl-tests bandwidths and fitting alpha, beta
# ---------------------------------------------------------------------------------------------

def busbw(n_bytes: float, time_s: float, nodes: int) -> tuple[float, float]:
    """(algbw, busbw) in bytes/s as nccl-tests defines them for all-reduce.

    algbw = n / t; busbw = algbw * 2(N-1)/N, the rate each link runs at in a ring: comparable
    to the link bandwidth whatever N is.
    """
    if not (math.isfinite(time_s) and time_s > 0):
        raise ValueError(f"time_s must be a finite number > 0, got {show(time_s)}")
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {show(nodes)}")
    algbw = n_bytes / time_s
    return algbw, algbw * 2 * (nodes - 1) / nodes


def _check_points(sizes: Sequence[float], times: Sequence[float], nodes: int) -> tuple[np.ndarray, np.ndarray]:
    if nodes < 2:
        raise ValueError(f"fit_alpha_beta needs nodes >= 2 (one node sends nothing), got {show(nodes)}")
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


