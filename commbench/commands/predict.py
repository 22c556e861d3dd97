"""`commbench predict`: the step simulated from a trace (commbench/timeline.py) per all-reduce
algorithm, on a network and topology you may not have (given, or the busbw fit), N up to 1024, and
the zoo ranked for it.

The trace is the newest nodes=1 run of the model as conf/ configures it (its compute profile and
buckets, DDP's own cost included); without one, the buckets of any run (else DDP's layout), over the
default profile when compute_s gives the step, all ready at the end otherwise. What real clusters add
(commbench/overheads.py) is priced on top, each input said to be measured, given or a default.
"""

from __future__ import annotations

from typing import Any

from commbench.comm.schemes import SCHEMES
from commbench.commands.common import emit
from commbench.errors import fail
from commbench.overrides import default_option
from commbench.options import FORMAT, RESULTS, Command, Option, choice, non_negative_float, positive_float, positive_int
from commbench.units import parse_bandwidth, parse_latency

REPLAYABLE = [name for name, scheme in SCHEMES.items() if scheme.replayable]  # one all-reduce per recorded bucket

COMMAND = Command("predict", "Simulate a step (compute from the trace, buckets at their ready offsets, overlap) per "
                  "all-reduce algorithm on a given network and topology (or the busbw fit), N up to 1024; rank the zoo.",
                  (Option("model", str, default_option("model"), "the model: a zoo name or <source>/<name>"),
                   Option("nodes", positive_int, 64, "ranks to predict for"),
                   Option("network", choice("given", "fit"), "given", "given: network.bandwidth/latency; fit: busbw's"),
                   Option("network.bandwidth", parse_bandwidth, None, "inter-node link rate (10gbit)"),
                   Option("network.latency", parse_latency, None, "inter-node per-message latency (5us)"),
                   Option("network.intra_bandwidth", parse_bandwidth, None, "intra-node link rate (default: inter's)"),
                   Option("network.intra_latency", parse_latency, None, "intra-node latency (default: inter's)"),
                   Option("cluster.gpus_per_node", positive_int, 1, "ranks per node (hierarchical ring)"),
                   Option("backend", choice("nccl", "gloo"), "nccl", "collectives at once: nccl 1, gloo 2"),
                   Option("compression", choice(*REPLAYABLE), "none", "whose recorded trace to use"),
                   Option("compute_s", positive_float, None, "one device's step without DDP (s): the trace scaled "
                          "to it, or the default profile; DDP's own cost is then added"),
                   Option("compute.scale", positive_float, 1.0, "compute times x this (0.1: a device 10x faster)"),
                   Option("batch_size", positive_int, None, "scale the recorded compute to this batch"),
                   Option("overhead.ddp_per_tensor_s", non_negative_float, None,
                          "DDP's own cost per gradient tensor (s; default: the backend's, 0 for a DDP trace)"),
                   Option("overhead.interference", non_negative_float, None,
                          "backward slowed by this share while collectives run beside it (default: the backend's)"),
                   Option("overhead.jitter", non_negative_float, None,
                          "per-step compute spread sigma / compute, for stragglers (default: the backend's)"),
                   RESULTS, FORMAT),
                  examples=("predict model=alexnet nodes=64 network.bandwidth=10gbit network.latency=5us",
                            "predict model=resnet50 nodes=64 cluster.gpus_per_node=8 network.bandwidth=100gbit "
                            "network.latency=5us network.intra_bandwidth=2400gbit network.intra_latency=1us",
                            "predict model=squeezenet network=fit"))
PREDICT_NODES = [2**k for k in range(1, 11)]  # 2 .. 1024


def network_for(opts: dict[str, Any], nodes: int):
    """The inter-node link: given bandwidth and latency, or the busbw fit of the newest busbw record's
    setup at N (the largest N below when N was not measured: said so)."""
    from commbench.netmodel import Network
    from commbench.results.store import path_of, records_of
    from commbench.results.validation import fits_like, nearest_fit

    if opts["network"] == "fit":
        busbw = records_of(opts["results_dir"], "busbw")
        fits = fits_like(busbw, busbw[-1]) if busbw else {}
        if not fits:
            fail(f"network=fit: no busbw fit in {path_of(opts['results_dir'], 'busbw')}; "
                 "run `python -m commbench busbw nodes=4` first")
        n = nearest_fit(fits, nodes)
        fit = fits[n]
        where = f"busbw fit at N={n}" + ("" if n == nodes else f", extrapolated to N={nodes}") + f" ({fit['setup']})"
        return Network(fit["alpha_s"], fit["beta_s_per_byte"]), where
    if opts["network.bandwidth"] is None or opts["network.latency"] is None:
        fail("predict needs network.bandwidth and network.latency (e.g. network.bandwidth=10gbit "
             "network.latency=5us), or network=fit")
    return Network(opts["network.latency"], 8 / opts["network.bandwidth"]), "given"


def cluster_for(opts: dict[str, Any], inter):
    from commbench.netmodel import Cluster, Network

    bw, lat = opts["network.intra_bandwidth"], opts["network.intra_latency"]
    intra = None if bw is None and lat is None else Network(
        inter.alpha_s if lat is None else lat, inter.beta_s_per_byte if bw is None else 8 / bw)
    return Cluster(inter, intra, opts["cluster.gpus_per_node"])


def model_inputs(model: str, runs: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
    """The trace to simulate for one model, and where it came from."""
    from commbench.comm.buckets import cached_layout
    from commbench.config import model_conf
    from commbench.models.sources import split
    from commbench.results import setup
    from commbench.settings import default
    from commbench.timeline import Trace

    compression = opts["compression"]
    of_model = [r for r in runs if r.get("model") == model]
    # A zoo model as conf/ configures it; any other as its newest run built it (else its builder's defaults).
    kwargs = (of_model[-1].get("model_kwargs") or {}) if split(model)[0] and of_model else model_conf(model)
    like = {"model": model, "model_kwargs": kwargs, "compression": compression, "compression_params": {},
            "bucket_cap_mb": default("ddp.bucket_cap_mb")}  # DDP's buckets
    mine = [r for r in setup.matching(runs, like, setup.BUCKETS) if r.get("status", "ok") == "ok"]
    traced = [r for r in mine if r["nodes"] == 1 and r.get("trace")]
    with_buckets = [r for r in mine if r.get("buckets")]
    layout = None if with_buckets else cached_layout(model, kwargs)  # torch only for a model not run
    done = None  # no trace: each bucket ready by the FLOPs behind it (DDP's layout) or its bytes (a record's)
    if traced:
        base = traced[-1]
        trace, source = Trace.of_record(base), f"trace of nodes=1 record {base.get('config_hash')} ({setup.describe(base)})"
        trace = trace.scaled((opts["batch_size"] or base["batch_size"]) / base["batch_size"])
    elif with_buckets or compression == "none":
        buckets = ([b["payload_bytes"] for b in sorted(with_buckets[-1]["buckets"], key=lambda b: b["index"])]
                   if with_buckets else layout["buckets"])
        trace = Trace.all_at_end(buckets, 0.0)
        done = None if with_buckets else layout["done"]
        source = (f"buckets of record {with_buckets[-1].get('config_hash')}" if with_buckets else "DDP layout") + \
            ", no nodes=1 trace: " + (f"the default profile (backward 2x forward, buckets ready by the "
                                      f"{'bytes' if done is None else 'FLOPs'} behind them)"
                                      if opts["compute_s"] else "every bucket ready at the end, compute unknown")
    else:
        return {"trace": None, "source": f"no compression={compression} run"}
    if opts["compute_s"] is not None:
        trace = trace.to_step(opts["compute_s"]) if trace.compute_s > 0 else Trace.profile(trace.buckets, opts["compute_s"], done)
    if trace.compute_s > 0:
        trace = trace.scaled(opts["compute.scale"])
    # A commbench trace is a DDP run: its compute holds DDP's cost (E(1) = 1) unless compute_s, one
    # device's step without DDP as published benchmarks define E, replaced it (E(1) < 1 by DDP's cost).
    in_trace = bool(traced) and opts["compute_s"] is None
    counts = [b.get("params") for b in with_buckets[-1]["buckets"]] if with_buckets else [None]
    tensors = sum(counts) if None not in counts else (layout or cached_layout(model, kwargs))["tensors"]
    return {"trace": trace, "source": source, "tensors": tensors, "ddp_in_trace": in_trace,
            "baseline": "the nodes=1 trace's step, DDP's cost included" if in_trace
            else "one device's step without DDP (compute_s)" if opts["compute_s"] else None}


def overheads_for(opts: dict[str, Any], inputs: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The terms to price (commbench/overheads.py) and, per term, where its value came from."""
    from commbench.overheads import DEFAULTS, Overheads

    default = DEFAULTS[opts["backend"]]
    values, said = {}, {}
    for term in ("ddp_per_tensor_s", "interference", "jitter"):
        given = opts[f"overhead.{term}"]
        if given is not None:
            values[term], said[term] = given, "given"
        elif term == "ddp_per_tensor_s" and inputs.get("ddp_in_trace"):
            values[term], said[term] = 0.0, "measured: in the trace's DDP step"
        else:
            values[term], said[term] = getattr(default, term), f"{opts['backend']} default"
    return Overheads(**values), said


def at(trace, nodes: int, cluster, channels: int, overheads=None, tensors: int = 0) -> dict[str, Any]:
    from commbench.overheads import Overheads
    from commbench.timeline import predict

    out = predict(trace, nodes, cluster, channels, overheads or Overheads(), tensors)
    if trace.compute_s == 0:  # compute unknown: only the exchange itself is predicted
        out = {a: {**p, "step_s": None, "exposed_comm_s": None, "no_overlap_step_s": None} for a, p in out.items()}
    return out


def ranking(runs: list[dict[str, Any]], opts: dict[str, Any], cluster, channels: int) -> list[dict[str, Any]]:
    """Every model by predicted ring comm time at N; step and efficiency where a trace gives compute."""
    from commbench.models import MODELS

    rows = []
    for name in MODELS:
        inputs = model_inputs(name, runs, {**opts, "compression": "none", "compute_s": None})
        trace = inputs["trace"]
        ring = at(trace, opts["nodes"], cluster, channels, overheads_for(opts, inputs)[0], inputs["tensors"])["ring"]
        rows.append({"model": name, "payload_bytes": sum(trace.buckets), "buckets": len(trace.buckets),
                     "compute_s": trace.compute_s or None, "comm_s": ring["comm_s"],
                     "exposed_comm_s": ring["exposed_comm_s"], "efficiency": ring["efficiency"]})
    return sorted(rows, key=lambda r: r["comm_s"])


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.models import MODEL_ERRORS, get_spec
    from commbench.results.store import records_of
    from commbench.sinks.predictions import predict_tables
    from commbench.timeline import CHANNELS
    try:
        get_spec(opts["model"])
    except MODEL_ERRORS as exc:
        fail(str(exc))
    net, net_source = network_for(opts, opts["nodes"])
    cluster, channels = cluster_for(opts, net), CHANNELS[opts["backend"]]
    runs = records_of(opts["results_dir"], "run")
    try:
        inputs = model_inputs(opts["model"], runs, opts)
    except MODEL_ERRORS as exc:  # a factory that does not build
        fail(str(exc))
    trace = inputs["trace"]
    if trace is None:
        fail(f"no run of {opts['model']} with compression={opts['compression']} in {opts['results_dir']}")
    overheads, said = overheads_for(opts, inputs)
    priced = (overheads, inputs["tensors"])
    out = {
        "model": opts["model"], "nodes": opts["nodes"], "compression": opts["compression"], "backend": opts["backend"],
        "network": {"alpha_s": net.alpha_s, "beta_s_per_byte": net.beta_s_per_byte,
                    "bandwidth_bits_per_s": net.bandwidth_bits_per_s, "source": net_source},
        "gpus_per_node": cluster.ranks_per_node,
        "intra_network": None if cluster.intra is None else {"alpha_s": cluster.intra.alpha_s,
                                                             "bandwidth_bits_per_s": cluster.intra.bandwidth_bits_per_s},
        "buckets": list(trace.buckets), "trace_source": inputs["source"],
        "compute_s": trace.compute_s or None, "trace": {"forward_s": trace.forward_s, "backward_s": trace.backward_s,
                                                       "codec_s": trace.codec_s, "optimizer_s": trace.optimizer_s},
        "overheads": {**vars(overheads), "tensors": inputs["tensors"], "source": said},
        "efficiency_baseline": inputs["baseline"],
        "at_nodes": at(trace, opts["nodes"], cluster, channels, *priced),
        "by_nodes": [{"nodes": n, **at(trace, n, cluster, channels, *priced)}
                     for n in sorted(set(PREDICT_NODES) | {opts["nodes"]})],
        "ranking": ranking(runs, opts, cluster, channels),
    }
    emit(out, opts["format"], lambda: predict_tables(out))
