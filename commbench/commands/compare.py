"""`commbench compare`: the question in one picture. Predicted E(N) and exposed comm per step for
N = 1 .. 1024, AlexNet against SqueezeNet and the other models chosen, on one network (predict's
timeline with what real clusters add), with the points measured on this machine's emulated links of
that rate where records exist; one line that answers, a table, and two charts."""

from __future__ import annotations

from typing import Any

from commbench.commands.common import emit, results_file
from commbench.errors import fail
from commbench.options import FORMAT, RESULTS, Command, Option, choice, positive_int
from commbench.units import parse_bandwidth, parse_latency

COMMAND = Command("compare", "Scaling efficiency E(N) and exposed comm per step against N = 1 .. 1024 for AlexNet, "
                  "SqueezeNet and other models on one network, predicted, with this machine's measured points "
                  "where records exist: one line that answers, a table, charts in results_dir/report/.",
                  (Option("models", lambda text: text.split(","), ["alexnet", "squeezenet", "squeezenet1_1",
                                                                    "mobilenet_v2", "resnet50", "vgg16"],
                          "the models, comma-separated"),
                   Option("nodes", positive_int, 64, "the N the answer line reads at"),
                   Option("network.bandwidth", parse_bandwidth, 10e9, "each node's link rate"),
                   Option("network.latency", parse_latency, 5e-6, "per-message latency"),
                   Option("cluster.gpus_per_node", positive_int, 1, "ranks per node (their link: NVLink's 1200gbit)"),
                   Option("compute", choice("flops", "trace"), "flops", "flops: each model's FLOPs at the rate a V100 "
                          "reached in PyTorch's DDP benchmark; trace: this machine's nodes=1 traces"),
                   Option("batch_size", positive_int, None, "per rank (default: 32 with compute=flops, the trace's)"),
                   Option("backend", choice("nccl", "gloo"), None, "the collectives and their overheads' defaults "
                          "(default: nccl with compute=flops, gloo with compute=trace: this machine's CPU)"),
                   RESULTS, FORMAT),
                  examples=("compare", "compare network.bandwidth=10gbit network.latency=5us",
                            "compare network.bandwidth=100mbit network.latency=0 compute=trace batch_size=8"))
CURVE = [2**k for k in range(11)]  # 1 .. 1024
INTRA = "1200gbit"  # a V100's NVLink in all (NVIDIA's datasheet), as published_scaling.yaml prices it


def curves(opts: dict[str, Any], runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per model its predicted E and exposed comm at every N of CURVE, and what the inputs were."""
    from commbench.comm.buckets import cached_layout
    from commbench.commands.predict import at, model_inputs, overheads_for
    from commbench.config import model_conf
    from commbench.models import MODEL_ERRORS
    from commbench.netmodel import Cluster, Network
    from commbench.results.published import device_rate
    from commbench.timeline import CHANNELS

    cluster = Cluster(Network.from_link(opts["network.bandwidth"], opts["network.latency"]),
                      Network.from_link(INTRA, "2us"), opts["cluster.gpus_per_node"])
    rate = device_rate(cached_layout) if opts["compute"] == "flops" else None
    batch = opts["batch_size"] or (32 if rate else None)
    backend = opts["backend"] or ("nccl" if rate else "gloo")
    base = {"compression": "none", "compute.scale": 1.0, "batch_size": batch, "backend": backend,
            **{f"overhead.{t}": None for t in ("ddp_per_tensor_s", "interference", "jitter")}}
    out, left_out = [], []
    for model in opts["models"]:
        try:
            flops = cached_layout(model, model_conf(model))["flops"] if rate else None
            if rate and flops is None:
                left_out.append(f"{model} (its FLOPs could not be counted on the meta device)")
                continue
            inputs = model_inputs(model, [] if rate else runs,
                                  {**base, "compute_s": 3 * flops * batch / rate if rate else None})
        except MODEL_ERRORS as exc:  # a factory that does not build
            left_out.append(f"{model} ({exc})")
            continue
        trace = inputs["trace"]
        if trace is None or not trace.compute_s:
            left_out.append(f"{model} (no nodes=1 trace)")
            continue
        priced = overheads_for(base, inputs)[0], inputs["tensors"]
        by_n = {n: at(trace, n, cluster, CHANNELS[backend], *priced)["ring"] for n in sorted({*CURVE, opts["nodes"]})}
        out.append({"model": model, "payload_bytes": sum(trace.buckets), "compute_s": trace.compute_s,
                    "source": inputs["source"], "efficiency": {n: p["efficiency"] for n, p in by_n.items()},
                    "exposed_comm_s": {n: p["exposed_comm_s"] for n, p in by_n.items()}})
    inputs = {"bandwidth_bits_per_s": opts["network.bandwidth"], "latency_s": opts["network.latency"],
              "gpus_per_node": opts["cluster.gpus_per_node"], "batch_size": batch, "compute": opts["compute"],
              "backend": backend,
              "device_flops": rate, "left_out": left_out}
    return out, inputs


def measured(runs: list[dict[str, Any]], replays: list[dict[str, Any]], opts: dict[str, Any],
             models: list[str]) -> list[dict[str, Any]]:
    """E(N) measured on this machine's emulated links of this rate and latency, uncompressed, its own
    compute (trained runs over a network, not CPU-bound; trace replays at their trace's speed): only
    beside curves drawn from this machine's traces (compute=trace), the only ones they compare with."""
    from commbench.results import setup
    from commbench.results.scaling import scaling_rows
    from commbench.results.validation import is_trace_replay

    if opts["compute"] != "trace":
        return []

    def here(r: dict[str, Any]) -> bool:
        return (r["model"] in models and setup.value(r, "bandwidth_bits_per_s") == opts["network.bandwidth"]
                and (setup.value(r, "latency_s") or 0.0) == opts["network.latency"]
                and setup.value(r, "compression") == "none")

    mine = [r for r in runs if here(r)]
    points = [{"model": r["model"], "nodes": r["nodes"], "efficiency": r["efficiency"], "how": "trained run"}
              for r in scaling_rows(mine) if r["nodes"] > 1 and r["efficiency"] is not None and r["network_measured"]]
    points += [{"model": r["model"], "nodes": r["nodes"], "efficiency": r["projected_efficiency"], "how": "trace replay"}
               for r in replays if here(r) and is_trace_replay(r) and r.get("projected_efficiency")
               and (r.get("compute_scale") or 1.0) == 1.0 and not r.get("compute_step_s")]
    return points


def draw(opts: dict[str, Any]) -> dict[str, Any]:
    """The curves, the measured points and the two charts in results_dir/report/; the answer with them."""
    from commbench.results.store import records_of
    from commbench.sinks.comparison import answer, plot_comm, plot_efficiency

    runs, replays = records_of(opts["results_dir"], "run"), records_of(opts["results_dir"], "replay")
    rows, inputs = curves(opts, runs)
    if not rows:
        fail(f"no model to draw: compute=trace needs nodes=1 runs of {', '.join(opts['models'])} in "
             f"{opts['results_dir']} (python -m commbench -m model=... nodes=1)")
    points = measured(runs, replays, opts, [r["model"] for r in rows])
    out = results_file(opts["results_dir"], "report")
    out.mkdir(parents=True, exist_ok=True)
    charts = [plot_efficiency(rows, points, inputs, out / "compare_efficiency.png"),
              plot_comm(rows, inputs, out / "compare_comm.png")]
    return {"answer": answer(rows, inputs, opts["nodes"]), "inputs": inputs, "models": rows,
            "measured": points, "charts": [str(c) for c in charts]}


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.models import MODEL_ERRORS, get_spec
    from commbench.sinks.comparison import comparison_table

    for model in opts["models"]:
        try:
            get_spec(model)
        except MODEL_ERRORS as exc:
            fail(str(exc))
    result = draw(opts)
    emit(result, opts["format"], lambda: comparison_table(result, opts["nodes"]))
