"""Subcommands besides `run`: models, bench, busbw, replay, scaling, layers, predict, validate, report.

Each takes key=value arguments. Its own keys are parsed here; the rest are run-config overrides
(nodes=4, cluster.address=..., results_dir=...) composed from conf/ and validated by plan.py, so bad
input is one line and a non-zero exit before Ray starts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from commbench.config import config_files

Parser = Callable[[str], Any]


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"commbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def choice(*allowed: str) -> Parser:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return text
    return parse


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def boolean(text: str) -> bool:
    return choice("true", "false")(text) == "true"


def split_options(argv: list[str], spec: dict[str, tuple[Parser, Any]],
                  passthrough: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Our key=value options (parsed, defaults filled in) and the remaining arguments."""
    values = {key: default for key, (_, default) in spec.items()}
    rest = []
    for arg in argv:
        key, sep, text = arg.partition("=")
        if sep and key in spec:
            try:
                values[key] = spec[key][0](text)
            except ValueError as exc:  # parsers that name the key themselves are not repeated
                fail(str(exc) if str(exc).startswith(key) else f"{key} {exc}")
        elif passthrough:
            rest.append(arg)
        else:
            fail(f"unexpected argument {arg!r}; expected: " + " ".join(f"{k}=..." for k in spec))
    return values, rest


def precheck_overrides(argv: list[str]) -> None:
    """What Hydra would answer with a screenful (an unknown config option, an unwritable output
    folder: Hydra writes its logs under results_dir before any task runs), said in one line."""
    from omegaconf import OmegaConf

    from commbench.plan import PlanError, writable_dir

    results_dir = OmegaConf.load(config_files(".")["config"].open()).get("results_dir")
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if key == "results_dir" and sep:
            results_dir = value
        if not sep or "/" in key or key not in ("model", "cluster", "compression", "network", "logging"):
            continue
        known = config_files(key)
        for name in value.split(","):
            if name and "(" not in value and name not in known:
                fail(f"unknown {key} {name!r}; known: {', '.join(sorted(known))}")
    try:
        writable_dir(results_dir)
    except PlanError as exc:
        fail(str(exc))


def plan_from(overrides: list[str]):
    """Compose and validate a run plan from overrides, failing in one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from commbench.config import compose
    from commbench.plan import PlanError, make_plan

    precheck_overrides(overrides)
    try:
        return make_plan(compose(overrides))
    except PlanError as exc:
        fail(str(exc))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:  # what Hydra raises for a bad override
        fail(first_line(exc))


def inside_emulated() -> bool:
    from commbench.cluster.emulated import inside_address

    return inside_address() is not None


def emulate_if_asked(plan, argv: list[str]) -> bool:
    """cluster=emulated: build the cluster, run this same command as its driver inside the head's
    namespace and tear the cluster down; True once that command succeeded (a failure exits with its
    code). False where there is nothing to emulate, or this process already is that driver."""
    if plan.cluster_kind != "emulated" or inside_emulated():
        return False
    from commbench.cluster.emulated import ClusterError, run_emulated

    try:
        code = run_emulated(plan, argv)
    except ClusterError as exc:
        fail(str(exc))
    if code:
        sys.exit(code)
    return True


def on_ray(plan, loop: Callable[[dict], Any], config: dict[str, Any]) -> Any:
    """Run `loop` on the plan's Ray workers; rank 0's return value. Failures are one line."""
    from commbench import runner
    from commbench.plan import PlanError

    try:
        runner.start_ray(plan)
        return runner.fit(plan, loop, config)
    except (PlanError, runner.RunError) as exc:
        fail(str(exc))


def emit(rows: Any, fmt: str, table: Callable[[], Any]) -> None:
    """JSON for machines, a rich table for people."""
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    from commbench.sinks.console import console

    console.print(table())


def results_file(results_dir: str, name: str) -> Path:
    return Path(results_dir).expanduser().resolve() / name


FORMAT = (choice("table", "json"), "table")
RESULTS = (str, "results")


# ---------------------------------------------------------------- models
def zoo_rows() -> list[dict[str, Any]]:
    """Every model as its conf/model/*.yaml configures it."""
    from omegaconf import OmegaConf

    from commbench.models import MODELS, build_model, count_params, get_spec, min_image_size

    confs = config_files("model")
    rows = []
    for name in MODELS:
        kwargs = OmegaConf.to_container(OmegaConf.create(confs[name].read_text())) if name in confs else {}
        kwargs.pop("name", None)
        variant = {k: v for k, v in kwargs.items() if k != "num_classes"}
        params = count_params(build_model(name, **kwargs))
        rows.append({"model": name, "params": params, "grad_bytes_per_step": 4 * params,
                     "num_classes": kwargs.get("num_classes", 1000), "variant": variant,
                     "min_image_size": min_image_size(name, **variant), "source": get_spec(name).source})
    return rows


def cmd_models(argv: list[str]) -> None:
    from commbench.sinks.console import models_table

    opts, _ = split_options(argv, {"format": FORMAT}, passthrough=False)
    rows = zoo_rows()
    emit(rows, opts["format"], lambda: models_table(rows))


# ---------------------------------------------------------------- bench
BENCH_DEFAULTS = ["model=squeezenet", "nodes=2", "steps=10", "warmup=3"]
WALL_RUN = ["model=squeezenet", "nodes=8", "steps=20"]


def cmd_bench(argv: list[str]) -> None:
    """Hook overhead (instrumented vs bare DDP) and start-to-record wall time, as ratios of one run."""
    from commbench.bench import hook_overhead, wall_time
    from commbench.records import append_record

    opts, overrides = split_options(argv, {"rounds": (positive_int, 5), "wall": (boolean, True)})
    plan = plan_from(BENCH_DEFAULTS + overrides)
    out = plan.runs_file.with_name("bench.jsonl")
    results = [{"bench": "hook_overhead", **hook_overhead(plan, opts["rounds"])}]
    append_record(out, results[-1])
    if opts["wall"]:
        results.append({"bench": "wall_time", **wall_time(WALL_RUN)})
        append_record(out, results[-1])
    print(json.dumps(results, indent=2))


SUBCOMMANDS: dict[str, Callable[[list[str]], None]] = {"models": cmd_models, "bench": cmd_bench}


# ---------------------------------------------------------------- busbw, replay
def collective_command(name: str, argv: list[str], spec: dict[str, tuple[Parser, Any]]):
    """The shared start of busbw and replay: options (plus iters, warmup_iters, format), a validated
    plan of at least 2 ranks, and the emulated cluster when asked. None once an emulated cluster has
    run the command; else (options, plan)."""
    opts, overrides = split_options(argv, {**spec, "iters": (positive_int, 20), "warmup_iters": (positive_int, 2),
                                           "format": FORMAT})
    plan = plan_from(overrides)
    if plan.nodes < 2:
        fail(f"{name} needs nodes >= 2: an all-reduce on one rank moves no bytes")
    if emulate_if_asked(plan, [name, *argv]):
        return None
    return opts, plan


def baseline(runs: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    """The newest successful nodes=1 run of a model: its compute time is the scaling baseline."""
    base = [r for r in runs if r.get("model") == model and r.get("nodes") == 1 and r.get("status") == "ok"]
    return base[-1] if base else None


def cmd_busbw(argv: list[str]) -> None:
    """All-reduce sizes min..max (powers of 2): time, algbw, busbw, and the alpha-beta fit of the ring."""
    from commbench.comm.busbw import busbw_loop, message_sizes, parse_bytes
    from commbench.netmodel import busbw, fit_alpha_beta
    from commbench.records import append_record, provenance
    from commbench.sinks.console import busbw_table

    started = collective_command("busbw", argv, {"min_bytes": (parse_bytes, 1024),
                                                 "max_bytes": (parse_bytes, 256 * 2**20)})
    if started is None:
        return
    opts, plan = started
    try:
        sizes = message_sizes(opts["min_bytes"], opts["max_bytes"])
    except ValueError as exc:
        fail(str(exc))
    rows = on_ray(plan, busbw_loop, {**plan.worker_config(), "sizes": sizes, "iters": opts["iters"],
                                         "warmup_iters": opts["warmup_iters"]})
    for row in rows:
        row["algbw"], row["busbw"] = busbw(row["bytes"], row["time_s"], plan.nodes)
    fit = fit_alpha_beta([r["bytes"] for r in rows], [r["time_s"] for r in rows], plan.nodes) if len(rows) > 1 else None
    record = {"kind": "busbw", "nodes": plan.nodes, "cluster_kind": plan.cluster_kind,
              "cluster_address": plan.cluster_address, "rows": rows, "fit": fit, **provenance()}
    append_record(plan.runs_file.with_name("busbw.jsonl"), record)
    emit(record, opts["format"], lambda: busbw_table(record))


def cmd_replay(argv: list[str]) -> None:
    """A model's recorded gradient buckets through the all-reduce with no compute."""
    from commbench.comm.replay import buckets_from_records, replay_loop
    from commbench.netmodel import efficiency
    from commbench.records import append_record, provenance, read_records
    from commbench.sinks.console import replay_table
    from commbench.stats import percentile

    started = collective_command("replay", argv, {})
    if started is None:
        return
    opts, plan = started
    try:
        buckets = buckets_from_records(plan.runs_file, plan.model)
    except LookupError as exc:
        fail(str(exc))
    out = on_ray(plan, replay_loop, {**plan.worker_config(), "buckets": buckets, "iters": opts["iters"],
                                         "warmup_iters": opts["warmup_iters"]})
    payload = sum(b["payload_bytes"] for b in buckets)
    if out["payloads"] != [payload]:
        fail(f"replay sent {out['payloads']} bytes per iteration, the record says {payload}", code=1)
    base = baseline(read_records(plan.runs_file).records, plan.model)
    record = {"kind": "replay", "model": plan.model, "nodes": plan.nodes, "bucket_bytes": [b["payload_bytes"] for b in buckets],
              "payload_bytes": payload, "iters": len(out["times_s"]), "comm_time_s": percentile(out["times_s"], 50),
              "comm_time_p90_s": percentile(out["times_s"], 90), "times_s": out["times_s"],
              "compute_time_1_s": base["compute_time_s"] if base else None, **provenance()}
    record["projected_efficiency"] = (efficiency(record["compute_time_1_s"], record["comm_time_s"])
                                      if record["compute_time_1_s"] else None)
    append_record(plan.runs_file.with_name("replay.jsonl"), record)
    emit(record, opts["format"], lambda: replay_table(record))


# ---------------------------------------------------------------- scaling, layers
def cmd_scaling(argv: list[str]) -> None:
    from commbench.records import read_records
    from commbench.scaling import scaling_rows
    from commbench.sinks.console import scaling_table

    opts, _ = split_options(argv, {"results_dir": RESULTS, "format": FORMAT}, passthrough=False)
    runs = read_records(results_file(opts["results_dir"], "runs.jsonl")).records
    replays = read_records(results_file(opts["results_dir"], "replay.jsonl")).records
    rows = scaling_rows(runs, replays)
    if not rows:
        fail(f"no successful runs in {results_file(opts['results_dir'], 'runs.jsonl')}")
    emit(rows, opts["format"], lambda: scaling_table(rows))


def cmd_layers(argv: list[str]) -> None:
    """The layers of a model's newest run by gradient bytes, with their share of the payload."""
    from commbench.records import read_records
    from commbench.sinks.console import layers_table
    from commbench.stats import largest_first

    opts, _ = split_options(argv, {"model": (str, "squeezenet"), "results_dir": RESULTS, "top": (positive_int, 20),
                                   "format": FORMAT}, passthrough=False)
    path = results_file(opts["results_dir"], "runs.jsonl")
    runs = [r for r in read_records(path).records if r.get("model") == opts["model"] and r.get("layer_bytes")]
    if not runs:
        fail(f"no run of model {opts['model']!r} in {path}: run `python -m commbench model={opts['model']}` first")
    layers = largest_first(runs[-1]["layer_bytes"])
    total = sum(layers.values())
    rows = [{"layer": k, "grad_bytes": v, "share": v / total} for k, v in list(layers.items())[:opts["top"]]]
    emit(rows, opts["format"], lambda: layers_table(opts["model"], rows, total, len(layers)))


SUBCOMMANDS.update({"busbw": cmd_busbw, "replay": cmd_replay, "scaling": cmd_scaling, "layers": cmd_layers})


# ---------------------------------------------------------------- predict, validate
PREDICT_NODES = [2**k for k in range(1, 11)]  # 2 .. 1024


def latest_fits(results_dir: str) -> dict[int, dict[str, Any]]:
    from commbench import netmodel
    from commbench.records import read_records

    return netmodel.latest_fits(read_records(results_file(results_dir, "busbw.jsonl")).records)


def network_for(opts: dict[str, Any], nodes: int):
    """The link to predict for: given bandwidth and latency, or the busbw fit (network=fit)."""
    from commbench.netmodel import Network

    if opts["network"] == "fit":
        fits = latest_fits(opts["results_dir"])
        if not fits:
            fail(f"network=fit: no busbw fit in {results_file(opts['results_dir'], 'busbw.jsonl')}; "
                 "run `python -m commbench busbw nodes=4` first")
        n = nodes if nodes in fits else max(fits)
        fit = fits[n]
        return Network(fit["alpha_s"], fit["beta_s_per_byte"]), f"busbw fit at N={n}"
    if opts["network.bandwidth"] is None or opts["network.latency"] is None:
        fail("predict needs network.bandwidth and network.latency (e.g. network.bandwidth=10gbit "
             "network.latency=5us), or network=fit")
    return Network(opts["network.latency"], 8 / opts["network.bandwidth"]), "given"


def model_inputs(model: str, runs: list[dict[str, Any]], batch_size: int | None) -> dict[str, Any]:
    """Bucket sizes (the newest record's, else DDP's layout) and compute time per step (the newest
    nodes=1 record's, scaled to batch_size), for one model."""
    from commbench.comm.buckets import ddp_bucket_bytes
    from commbench.comm.replay import newest_buckets
    from commbench.config import model_conf

    recorded = newest_buckets(runs, model)
    if recorded is not None:
        buckets, bucket_source = [b["payload_bytes"] for b in recorded], "record"
    else:
        buckets, bucket_source = ddp_bucket_bytes(model, model_conf(model)), "DDP layout"
    base = baseline(runs, model)
    compute = None
    if base:
        compute = base["compute_time_s"] * (batch_size or base["batch_size"]) / base["batch_size"]
    return {"buckets": buckets, "bucket_source": bucket_source, "compute_s": compute}


def cmd_predict(argv: list[str]) -> None:
    """Predicted gradient exchange, step time and efficiency per all-reduce algorithm, N up to 1024,
    and the zoo ranked for that network."""
    from commbench.models import MODELS, UnknownModelError, get_spec
    from commbench.netmodel import parse_bandwidth, parse_latency, predict
    from commbench.records import read_records
    from commbench.sinks.console import predict_tables

    opts, _ = split_options(argv, {
        "model": (str, "squeezenet"), "nodes": (positive_int, 64), "network": (choice("given", "fit"), "given"),
        "network.bandwidth": (parse_bandwidth, None), "network.latency": (parse_latency, None),
        "compute_s": (float, None), "batch_size": (positive_int, None), "results_dir": RESULTS,
        "format": FORMAT}, passthrough=False)
    try:
        get_spec(opts["model"])
    except UnknownModelError as exc:
        fail(str(exc))
    net, net_source = network_for(opts, opts["nodes"])
    runs = read_records(results_file(opts["results_dir"], "runs.jsonl")).records
    inputs = model_inputs(opts["model"], runs, opts["batch_size"])
    compute = opts["compute_s"] if opts["compute_s"] is not None else inputs["compute_s"]
    nodes_list = sorted(set(PREDICT_NODES) | {opts["nodes"]})
    ranking = []
    for name in MODELS:
        other = model_inputs(name, runs, opts["batch_size"])
        guess = predict(other["buckets"], opts["nodes"], net, other["compute_s"])
        ranking.append({"model": name, "payload_bytes": sum(other["buckets"]), "buckets": len(other["buckets"]),
                        "compute_s": other["compute_s"], **{k: guess["ring"][k] for k in ("comm_s", "efficiency")}})
    ranking.sort(key=lambda r: (r["efficiency"] is None, -(r["efficiency"] or 0), r["comm_s"]))
    out = {
        "model": opts["model"], "nodes": opts["nodes"],
        "network": {"alpha_s": net.alpha_s, "beta_s_per_byte": net.beta_s_per_byte,
                    "bandwidth_bits_per_s": net.bandwidth_bits_per_s, "source": net_source},
        "buckets": inputs["buckets"], "bucket_source": inputs["bucket_source"],
        "compute_s": compute, "compute_source": "given" if opts["compute_s"] is not None else
        ("nodes=1 record" if compute is not None else None),
        "at_nodes": predict(inputs["buckets"], opts["nodes"], net, compute),
        "by_nodes": [{"nodes": n, **predict(inputs["buckets"], n, net, compute)} for n in nodes_list],
        "ranking": ranking,
    }
    emit(out, opts["format"], lambda: predict_tables(out))


def cmd_validate(argv: list[str]) -> None:
    """Alpha-beta predictions (busbw fits) against measured comm-only replays, with the error."""
    from commbench.netmodel import validation_rows
    from commbench.records import read_records
    from commbench.sinks.console import validate_table

    opts, _ = split_options(argv, {"results_dir": RESULTS, "format": FORMAT}, passthrough=False)
    replays = read_records(results_file(opts["results_dir"], "replay.jsonl")).records
    rows = validation_rows(latest_fits(opts["results_dir"]), replays)
    if not rows:
        fail("nothing to validate: needs busbw fits and replays at the same nodes in "
             f"{results_file(opts['results_dir'], '')} (see launch/validate_alpha_beta.sh)")
    emit(rows, opts["format"], lambda: validate_table(rows))


SUBCOMMANDS.update({"predict": cmd_predict, "validate": cmd_validate})


# ---------------------------------------------------------------- report
def cmd_report(argv: list[str]) -> None:
    """Charts (PNG) and summary.md of a results folder, in ${results_dir}/report/."""
    from commbench.sinks.report import write_report

    opts, _ = split_options(argv, {"results_dir": RESULTS, "model": (str, None)}, passthrough=False)
    try:
        paths = write_report(results_file(opts["results_dir"], ""), opts["model"])
    except ValueError as exc:
        fail(str(exc))
    for path in paths:
        print(path)


SUBCOMMANDS.update({"report": cmd_report})


# ---------------------------------------------------------------- dashboard
def cmd_dashboard(argv: list[str]) -> None:
    """A W&B report with commbench's panels, saved to entity/project (needs a W&B key and network)."""
    from commbench.sinks import wandb_log
    from commbench.sinks.dashboard import build_report

    opts, _ = split_options(argv, {"project": (str, "commbench"), "entity": (str, None), "group": (str, None),
                                   "title": (str, None)}, passthrough=False)
    if not opts["entity"]:
        fail("dashboard needs entity=<your W&B user or team> (and project=, default commbench)")
    base_url = wandb_log.server_url()
    if not wandb_log.api_key(base_url):
        fail(f"no W&B API key for {base_url}: set WANDB_API_KEY or run `wandb login`, then retry")
    report = build_report(opts["entity"], opts["project"], opts["group"], opts["title"])
    try:
        report.save()
    except Exception as exc:  # noqa: BLE001 - auth, network and server errors alike: one line
        fail(f"W&B report not saved to {opts['entity']}/{opts['project']}: {first_line(exc)}", code=1)
    print(report.url)


SUBCOMMANDS.update({"dashboard": cmd_dashboard})


# ---------------------------------------------------------------- compare-compression
def scheme_list(text: str) -> list[str]:
    from commbench.comm.compression import SCHEMES

    names = [s for s in text.split(",") if s]
    unknown = [s for s in names if s not in SCHEMES]
    if unknown or not names:
        raise ValueError(f"must be a comma-separated list of {', '.join(SCHEMES)}, got {text!r}")
    return names


def cmd_compare_compression(argv: list[str]) -> None:
    """Every compression scheme on one model and N, trained the same way: bytes per step, comm and step
    time, and the loss each reaches. Each scheme is a recorded run (resume skips it when recorded)."""
    from commbench.__main__ import run_cell, wandb_settings
    from commbench.comm.compression import SCHEMES
    from commbench.compare import CONVERGENCE, compression_rows
    from commbench.config import compose
    from commbench.records import read_records
    from commbench.sinks.console import compression_table
    from commbench.sweep import close_sweep

    opts, overrides = split_options(argv, {"schemes": (scheme_list, list(SCHEMES)), "format": FORMAT})
    cells = [[*CONVERGENCE, *overrides, f"compression={s}"] for s in opts["schemes"]]
    plans = [plan_from(cell) for cell in cells]  # every cell is valid before Ray starts
    group = f"compare-{plans[0].model}-n{plans[0].nodes}"
    for k, cell in enumerate(cells, start=1):
        run_cell(compose(cell), cell, cell=(k, len(cells)), group=group)
    hashes = {p.config_hash() for p in plans}
    rows = compression_rows(r for r in read_records(plans[0].runs_file).records if r.get("config_hash") in hashes)
    emit(rows, opts["format"], lambda: compression_table(rows))
    close_sweep(plans[0].results_dir, wandb_settings(compose(cells[0]), plans[0].results_dir, group))


SUBCOMMANDS.update({"compare-compression": cmd_compare_compression})
