"""What real clusters add to the alpha-beta timeline: each a named cost, in seconds per step, with its
physical meaning and formula. Pure functions (stdlib): no torch, no records.

    step(N) = simulated step (timeline.py) + ddp + interference(N) + straggler(N)
    E(N)    = compute / step(N), compute: one device's step without DDP (as published benchmarks define it)

Defaults (`NCCL`) come from one published measurement, PyTorch's DDP benchmark on DGX-1 V100 machines
(pytorch/pytorch benchmarks/distributed/ddp/README.md; the rows are in results/published_scaling.yaml
and `published.derive_overheads` recomputes each default from them):
- ddp_per_tensor_s: its 1 GPU DDP vs no-DDP steps, pooled over its four models, per gradient tensor;
- interference: its 2 GPU vs 1 GPU DDP steps over NVLink (where the network costs next to nothing),
  pooled, per second of backward that collectives run beside;
- jitter: its 1 GPU no-DDP p95 - p50 spread, pooled, as a normal's sigma (p95 - p50 = 1.645 sigma).
gloo on CPU has no published measurement: its defaults are 0 (a commbench trace already holds DDP's
cost, and a trace replay's compute is a sleep that nothing slows or jitters).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Overheads:
    ddp_per_tensor_s: float = 0.0  # DDP's own cost per gradient tensor per step (s)
    interference: float = 0.0      # kappa: how much slower backward runs while collectives run beside it
    jitter: float = 0.0            # sigma / compute: one rank's per-step compute spread

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"overhead {name} must be a finite number >= 0, got {value!r}")


NCCL = Overheads(ddp_per_tensor_s=25.3e-6, interference=0.0494, jitter=0.00148)
DEFAULTS = {"nccl": NCCL, "gloo": Overheads()}


def ddp_cost(tensors: int, per_tensor_s: float) -> float:
    """DDP's own cost at any world size, 1 included: per gradient tensor its autograd hook, its copy
    into the bucket and back, and its share of the bucket's launch and completion: tensors x c."""
    return tensors * per_tensor_s


def interference_cost(backward_s: float, first_ready_s: float, nodes: int, kappa: float) -> float:
    """Compute slowed while collectives overlap it: from the first bucket's issue to the end of
    backward the communication kernels hold SMs and memory bandwidth (gloo: its threads hold cores),
    so backward runs kappa slower over that span: kappa x (backward - first ready). N = 1: nothing to
    exchange with."""
    return 0.0 if nodes < 2 else kappa * max(0.0, backward_s - first_ready_s)


def expected_max(n: int) -> float:
    """E[max of n standard normals] by Blom's (1958) approximation Phi^-1((n - 0.375) / (n + 0.25));
    0 for n = 1; 4.4% above the exact value at n = 2 (1 / sqrt(pi)), within 2% from n = 4 on."""
    return 0.0 if n < 2 else NormalDist().inv_cdf((n - 0.375) / (n + 0.25))


def straggler_cost(compute_s: float, jitter: float, nodes: int) -> float:
    """Stragglers: a synchronous step waits for the slowest of N ranks, each rank's compute spread
    normally with sigma = jitter x compute: sigma x E[max of N] (Blom), which grows like sqrt(2 ln N)."""
    return jitter * compute_s * expected_max(nodes)


def costs(compute_s: float, backward_s: float, first_ready_s: float, tensors: int, nodes: int,
          overheads: Overheads) -> dict[str, float]:
    """Each term at N, in seconds per step; their sum is what the step gains over the timeline."""
    return {"ddp_s": ddp_cost(tensors, overheads.ddp_per_tensor_s),
            "interference_s": interference_cost(backward_s, first_ready_s, nodes, overheads.interference),
            "straggler_s": straggler_cost(compute_s, overheads.jitter, nodes)}
