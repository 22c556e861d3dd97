"""Published measurements of real GPU clusters against the predictor.

published_scaling.yaml holds data-parallel scaling measurements, each with its source. Here each
becomes a row: the model's DDP bucket layout (cached), the single-GPU step as its compute with the
default profile (timeline.Trace.profile), the source's links and GPUs per node, and the predicted E(N)
beside the published one, with the same defaults for every row (overheads.DEFAULTS["nccl"]).
`derive_overheads` recomputes those defaults from the source that sets them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Callable

from commbench.netmodel import Cluster, Network
from commbench.overheads import NCCL, Overheads, interference_cost, straggler_cost
from commbench.timeline import Trace, predict

DATA = Path(__file__).with_name("published_scaling.yaml")
Layout = Callable[[str], dict[str, Any]]  # model -> {"buckets", "tensors", "done"} (comm.buckets.cached_layout)
SETUP_KEYS = ("source", "hardware", "framework", "algorithm", "batch_per_gpu", "gpus_per_node", "intra", "models")
P95_SIGMAS = 1.645  # p95 - p50 of a normal, in sigmas


@cache
def sources(path: Path = DATA) -> dict[str, dict[str, Any]]:
    """The data file, each source checked to carry the setup its rows need."""
    import yaml

    data = yaml.safe_load(path.read_text())
    for name, src in data.items():
        missing = [k for k in SETUP_KEYS if k not in src] + (["why"] if src.get("check") is False and "why" not in src else [])
        if missing:
            raise ValueError(f"{path.name}: source {name} lacks {', '.join(missing)}")
    return data


def cluster_of(src: dict[str, Any]) -> Cluster:
    intra = Network.from_link(src["intra"]["bandwidth"], src["intra"]["latency"])
    inter = Network.from_link(src["inter"]["bandwidth"], src["inter"]["latency"]) if "inter" in src else intra
    return Cluster(inter, intra, src["gpus_per_node"])


def single_step_s(src: dict[str, Any], figures: dict[str, Any]) -> float:
    """One GPU's step without DDP where the source gives it, else its 1-GPU run."""
    if "no_ddp_s" in figures:
        return figures["no_ddp_s"]
    return src["batch_per_gpu"] / figures["images_per_s"][1]


def measured(src: dict[str, Any], figures: dict[str, Any]) -> dict[int, float]:
    """Published E(N) for every N >= 2, as the source defines it."""
    t1 = single_step_s(src, figures)
    if "step_s" in figures:
        return {n: t1 / t for n, t in figures["step_s"].items() if n >= 2}
    return {n: rate / (n * figures["images_per_s"][1]) for n, rate in figures["images_per_s"].items() if n >= 2}


def profile(src: dict[str, Any], model: str, figures: dict[str, Any], layout: Layout) -> tuple[Trace, int]:
    """The step to simulate: the single-GPU step over the default profile, and the gradient tensors."""
    shape = layout(model)
    return Trace.profile(shape["buckets"], single_step_s(src, figures), shape["done"]), shape["tensors"]


def held_out(rows: list[dict[str, Any]], other_sources: bool = False) -> list[dict[str, Any]]:
    """The rows that check the predictor: inside what it models, no default taken from them (nor,
    with other_sources, from their source)."""
    return [r for r in rows if r["checked"] and not r["sets_default"] and not (other_sources and r["same_source"])]


def published_rows(layout: Layout, overheads: Overheads = NCCL) -> list[dict[str, Any]]:
    """One row per source, model and N >= 2: published and predicted E(N), the difference in points and
    the predicted terms. `sets_default`: a default was taken from the row; `same_source`: from its
    source; `checked`: the source is inside what the predictor models (else `why` not)."""
    rows = []
    for name, src in sources().items():
        cluster = cluster_of(src)
        for model, figures in src["models"].items():
            trace, tensors = profile(src, model, figures, layout)
            for nodes, published in measured(src, figures).items():
                p = predict(trace, nodes, cluster, 1, overheads, tensors)[src["algorithm"]]
                rows.append({"source": name, "cite": src["source"], "model": model, "gpus": nodes,
                             "gpus_per_node": src["gpus_per_node"], "batch_per_gpu": src["batch_per_gpu"],
                             "compute_s": trace.compute_s, "published_e": published, "predicted_e": p["efficiency"],
                             "delta_points": 100 * (p["efficiency"] - published),
                             "exposed_comm_s": p["exposed_comm_s"], "ddp_s": p["ddp_s"],
                             "interference_s": p["interference_s"], "straggler_s": p["straggler_s"],
                             "same_source": bool(src.get("sets_defaults")),
                             "sets_default": bool(src.get("sets_defaults")) and nodes == 2,
                             "checked": src.get("check", True), "why": src.get("why")})
    return rows


def defaults_source() -> dict[str, Any]:
    """The one source marked sets_defaults: the published measurement the defaults come from."""
    [src] = [s for s in sources().values() if s.get("sets_defaults")]
    return src


def derive_overheads(layout: Layout) -> Overheads:
    """The defaults from the source marked sets_defaults, pooled over its models:
    ddp_per_tensor_s = sum(t1 DDP - t1 no DDP) / sum(tensors);
    jitter = sum(p95 - p50) / 1.645 / sum(p50), one GPU without DDP;
    interference = sum(t2 - t1 DDP - exposed comm(2) - straggler(2)) / sum(backward - first ready),
    the 2-GPU step over NVLink less what the timeline and stragglers already price."""
    src = defaults_source()
    models = src["models"].items()
    tensors = {m: layout(m)["tensors"] for m, _ in models}
    ddp = sum(f["step_s"][1] - f["no_ddp_s"] for _, f in models) / sum(tensors.values())
    jitter = sum(f["no_ddp_p95_s"] - f["no_ddp_s"] for _, f in models) / P95_SIGMAS / sum(f["no_ddp_s"] for _, f in models)
    loss = span = 0.0
    for model, f in models:
        trace, _ = profile(src, model, f, layout)
        p = predict(trace, 2, cluster_of(src), 1)[src["algorithm"]]
        loss += f["step_s"][2] - f["step_s"][1] - p["exposed_comm_s"] - straggler_cost(trace.compute_s, jitter, 2)
        span += interference_cost(trace.backward_s, min(trace.ready_s), 2, kappa=1.0)
    return Overheads(ddp_per_tensor_s=ddp, interference=loss / span, jitter=jitter)


def device_rate(layout: Layout) -> float:
    """FLOP/s one GPU of the defaults' source reached training (forward and backward: 3 x the forward
    FLOPs per image), pooled over its models: sum(3 x FLOPs x batch) / sum(step without DDP)."""
    src = defaults_source()
    work = sum(3 * layout(m)["flops"] * src["batch_per_gpu"] for m in src["models"])
    return work / sum(f["no_ddp_s"] for f in src["models"].values())
