"""`commbench predict`: gradient exchange, step time and efficiency per all-reduce algorithm for a
network you may not have (given, or the busbw fit), N up to 1024, and the zoo ranked for it.

Buckets come from the newest run of the model with the asked compression (else DDP's layout), compute
from the nodes=1 run with that run's compute setup; the output names the setups it used.
"""

from __future__ import annotations

from typing import Any

from commbench.commands.common import emit
from commbench.errors import fail
from commbench.options import FORMAT, RESULTS, Command, Option, choice, positive_float, positive_int
from commbench.units import parse_bandwidth, parse_latency

COMMAND = Command("predict", "Predict comm time, step time and efficiency per all-reduce algorithm on a given "
                  "network (or the busbw fit), N up to 1024, and rank the zoo.",
                  (Option("model", str, "squeezenet", "the model"),
                   Option("nodes", positive_int, 64, "ranks to predict for"),
                   Option("network", choice("given", "fit"), "given", "given: network.bandwidth/latency; fit: busbw's"),
                   Option("network.bandwidth", parse_bandwidth, None, "link rate (10gbit)"),
                   Option("network.latency", parse_latency, None, "per-message latency (5us)"),
                   Option("compression", choice("none", "fp16", "bf16"), "none", "whose recorded buckets to price"),
                   Option("compute_s", positive_float, None, "compute per step (default: the nodes=1 record's)"),
                   Option("batch_size", positive_int, None, "scale the recorded compute to this batch"),
                   RESULTS, FORMAT),
                  examples=("predict model=alexnet nodes=64 network.bandwidth=10gbit network.latency=5us",
                            "predict model=squeezenet network=fit"))
PREDICT_NODES = [2**k for k in range(1, 11)]  # 2 .. 1024


def network_for(opts: dict[str, Any], nodes: int):
    """The link to predict for: given bandwidth and latency, or the busbw fit of the newest busbw
    record's setup at N (the largest N below when N was not measured: said so)."""
    from commbench.netmodel import Network
    from commbench.results.store import path_of, records_of
    from commbench.results.validation import fits_like

    if opts["network"] == "fit":
        busbw = records_of(opts["results_dir"], "busbw")
        fits = fits_like(busbw, busbw[-1]) if busbw else {}
        if not fits:
            fail(f"network=fit: no busbw fit in {path_of(opts['results_dir'], 'busbw')}; "
                 "run `python -m commbench busbw nodes=4` first")
        n = nodes if nodes in fits else max(k for k in fits if k <= nodes) if min(fits) <= nodes else min(fits)
        fit = fits[n]
        where = f"busbw fit at N={n}" + ("" if n == nodes else f", extrapolated to N={nodes}") + f" ({fit['setup']})"
        return Network(fit["alpha_s"], fit["beta_s_per_byte"]), where
    if opts["network.bandwidth"] is None or opts["network.latency"] is None:
        fail("predict needs network.bandwidth and network.latency (e.g. network.bandwidth=10gbit "
             "network.latency=5us), or network=fit")
    return Network(opts["network.latency"], 8 / opts["network.bandwidth"]), "given"


def model_inputs(model: str, runs: list[dict[str, Any]], compression: str, batch_size: int | None) -> dict[str, Any]:
    """Bucket sizes and compute time per step for one model, and where each came from."""
    from commbench.comm.buckets import ddp_bucket_bytes
    from commbench.config import model_conf
    from commbench.results import setup

    like = {"model": model, "model_kwargs": {"num_classes": 1000, **model_conf(model)}, "compression": compression,
            "compression_params": {}, "bucket_cap_mb": 25.0}  # the model as conf/ configures it, DDP's buckets
    mine = setup.matching(runs, like, ("model", "model_kwargs", "compression", "bucket_cap_mb"))
    with_buckets = [r for r in mine if r.get("buckets")]
    trace = with_buckets[-1] if with_buckets else None
    if trace:
        buckets = [b["payload_bytes"] for b in sorted(trace["buckets"], key=lambda b: b["index"])]
        bucket_source = f"record {trace.get('config_hash')} ({setup.describe(trace)})"
    elif compression == "none":
        buckets, bucket_source = ddp_bucket_bytes(model, model_conf(model)), "DDP layout"
    else:
        buckets, bucket_source = [], f"no compression={compression} run"
    ones = [r for r in (setup.matching(mine, trace, setup.COMPUTE) if trace else mine) if r["nodes"] == 1]
    base = ones[-1] if ones else None
    compute = setup.non_comm_s(base) * (batch_size or base["batch_size"]) / base["batch_size"] if base else None
    return {"buckets": buckets, "bucket_source": bucket_source, "compute_s": compute,
            "compute_source": f"nodes=1 record {base.get('config_hash')} ({setup.describe(base)})" if base else None}


def ranking(runs: list[dict[str, Any]], opts: dict[str, Any], net) -> list[dict[str, Any]]:
    """Every model by predicted ring comm time at N; efficiency where its compute time is known."""
    from commbench.models import MODELS
    from commbench.netmodel import predict

    rows = []
    for name in MODELS:
        other = model_inputs(name, runs, "none", opts["batch_size"])
        guess = predict(other["buckets"], opts["nodes"], net, other["compute_s"])["ring"]
        rows.append({"model": name, "payload_bytes": sum(other["buckets"]), "buckets": len(other["buckets"]),
                     "compute_s": other["compute_s"], "comm_s": guess["comm_s"], "efficiency": guess["efficiency"]})
    return sorted(rows, key=lambda r: r["comm_s"])


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.models import UnknownModelError, get_spec
    from commbench.netmodel import predict
    from commbench.results.store import records_of
    from commbench.sinks.console import predict_tables
    try:
        get_spec(opts["model"])
    except UnknownModelError as exc:
        fail(str(exc))
    net, net_source = network_for(opts, opts["nodes"])
    runs = records_of(opts["results_dir"], "run")
    inputs = model_inputs(opts["model"], runs, opts["compression"], opts["batch_size"])
    if not inputs["buckets"]:
        fail(f"no run of {opts['model']} with compression={opts['compression']} in {opts['results_dir']}")
    given = opts["compute_s"] is not None
    compute = opts["compute_s"] if given else inputs["compute_s"]
    out = {
        "model": opts["model"], "nodes": opts["nodes"], "compression": opts["compression"],
        "network": {"alpha_s": net.alpha_s, "beta_s_per_byte": net.beta_s_per_byte,
                    "bandwidth_bits_per_s": net.bandwidth_bits_per_s, "source": net_source},
        "buckets": inputs["buckets"], "bucket_source": inputs["bucket_source"],
        "compute_s": compute, "compute_source": "given" if given else inputs["compute_source"],
        "at_nodes": predict(inputs["buckets"], opts["nodes"], net, compute),
        "by_nodes": [{"nodes": n, **predict(inputs["buckets"], n, net, compute)}
                     for n in sorted(set(PREDICT_NODES) | {opts["nodes"]})],
        "ranking": ranking(runs, opts, net),
    }
    emit(out, opts["format"], lambda: predict_tables(out))
