"""`commbench replay`: a recorded step's gradient exchange on N real ranks over the real (or emulated)
network, without its compute; one record per model in replay.jsonl, with the setup identity.

mode=trace (default): the step trace of the newest nodes=1 run with this plan's compute identity
(model, batch, image size, threads per worker, device, compression), compute as sleep, collectives at
their recorded ready offsets: the network is what a replay varies. mode=back_to_back: the buckets of
the newest run with this bucket layout, one all-reduce after the other, no compute.
"""

from __future__ import annotations

from typing import Any

from commbench.commands.common import COLLECTIVE_OPTIONS, emit, emulate_if_asked, on_ray
from commbench.errors import fail
from commbench.models.sources import run_options
from commbench.options import FORMAT, Command, Option, choice, positive_float

COMMAND = Command("replay", "Replay a recorded step on N real ranks with compute as sleep (collectives issued at their "
                  "recorded ready offsets): step time, exposed comm and E(N) for this network, without CPU contention.",
                  (*COLLECTIVE_OPTIONS,
                   Option("mode", choice("trace", "back_to_back"), "trace",
                          "trace: compute as sleep, buckets at their offsets; back_to_back: buckets in a row, no compute"),
                   Option("models", lambda s: [m for m in s.split(",") if m], None,
                          "several models in one cluster (alexnet,squeezenet,timm/ghostnet_100); default: model="),
                   Option("trace", str, None, "config_hash (or its start) of the run whose trace to replay; "
                          "run: the newest trained run at this N and network (its own compute)"),
                   Option("compute.scale", positive_float, 1.0, "compute times x this (0.1: a device 10x faster)"),
                   Option("compute.step_s", positive_float, None, "scale the profile to this step time (s)"),
                   FORMAT), run_options=True,
                  examples=("replay model=alexnet nodes=8 cluster=emulated network.bandwidth=100mbit",
                            "replay models=alexnet,squeezenet nodes=4 compute.scale=0.1",
                            "replay model=alexnet nodes=4 mode=back_to_back"))

ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def plan_like(plan) -> dict[str, Any]:
    """The plan as a record to match others against: its model and the setup the driver knows."""
    return {"model": plan.model, "model_kwargs": plan.model_kwargs, **plan.setup()}


def compute_known() -> tuple[str, ...]:
    """The compute identity the driver knows before the workers run (they report the device)."""
    from commbench.results import setup

    return tuple(f for f in setup.COMPUTE if f != "device")


def trace_run(plan, runs: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    """The nodes=1 run whose trace this plan replays: `wanted` by hash, else the newest whose compute
    identity is the plan's. One line when there is none."""
    from commbench.results import setup

    if wanted == "run":
        return own_run(plan, runs)
    ones = [r for r in runs if r.get("model") == plan.model and r.get("nodes") == 1 and r.get("trace")
            and r.get("status", "ok") == "ok"]
    if wanted:
        hits = [r for r in runs if str(r.get("config_hash", "")).startswith(wanted) and r.get("trace")]
        if not hits:
            fail(f"trace={wanted}: no run with that config_hash and a trace in {plan.runs_file}")
        if hits[-1].get("model") != plan.model:
            fail(f"trace={wanted} is a run of {hits[-1].get('model')}, not {plan.model}")
        return hits[-1]
    fields, like = compute_known(), plan_like(plan)
    same = setup.matching(ones, like, fields)
    if same:
        return same[-1]
    if ones:
        fail(f"no nodes=1 run of {plan.model} with this compute setup in {plan.runs_file}: the newest differs in "
             + "; ".join(setup.differences(ones[-1], like, fields)))
    fail(f"no nodes=1 run of {plan.model} with a trace in {plan.runs_file}: run `python -m commbench "
         f"{' '.join(run_options(plan.model))} nodes=1` (same batch_size, threads) first")


def own_run(plan, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """trace=run: the newest trained run of this model at this N over this network with this compute
    setup. Replaying its own trace (compute times as that run measured them, contention included)
    checks the replay against the run with compute taken out of the comparison."""
    from commbench.results import setup

    same = [r for r in setup.matching(runs, plan_like(plan), (*setup.NETWORK, *compute_known())) if r.get("nodes") == plan.nodes and r.get("trace")
            and r.get("status", "ok") == "ok"]
    if not same:
        fail(f"trace=run: no run of {plan.model} at nodes={plan.nodes} over this network and compute setup in "
             f"{plan.runs_file}")
    return same[-1]


def bucket_run(plan, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """back_to_back: the newest run whose buckets are laid out as this plan's would be."""
    from commbench.results import setup

    like = plan_like(plan)
    of_model = [r for r in runs if r.get("model") == plan.model and r.get("buckets")]
    same = setup.matching(of_model, like, setup.BUCKETS)
    if same:
        return same[-1]
    if of_model:
        fail(f"no run of {plan.model} with this bucket layout in {plan.runs_file}: the newest differs in "
             + "; ".join(setup.differences(of_model[-1], like, setup.BUCKETS)))
    fail(f"no record of model {plan.model!r} with buckets in {plan.runs_file}: "
         f"run `python -m commbench {' '.join(run_options(plan.model))} nodes=2` first")


def job_for(plan, runs: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
    """What the workers replay for one model, and the record it came from."""
    from commbench.comm.schemes import SCHEMES
    from commbench.timeline import Trace

    scheme = SCHEMES[plan.compression]
    if scheme.collective != "all_reduce":
        fail(f"replay issues all-reduces; compression={plan.compression} sends its buckets through all-gathers")
    if not scheme.replayable:
        replayable = sorted(name for name, s in SCHEMES.items() if s.replayable)
        fail(f"replay sends each recorded bucket as one all-reduce; compression={plan.compression} computes its "
             f"payload anew every step in several (replayable: {', '.join(replayable)})")
    if opts["mode"] == "back_to_back":
        source = bucket_run(plan, runs)
        buckets = [{"payload_bytes": b["payload_bytes"], "dtype": b["dtype"]}
                   for b in sorted(source["buckets"], key=lambda b: b["index"])]
        return {"model": plan.model, "source": source, "buckets": buckets, "traces": None}
    source = trace_run(plan, runs, opts["trace"])
    traces = [Trace.of_record(source, rank) for rank in range(len(source["trace"]["ranks"]))]
    if opts["compute.step_s"] is not None:  # every rank by the factor that takes rank 0 to the step asked
        factor = opts["compute.step_s"] / traces[0].compute_s
        traces = [t.scaled(factor) for t in traces]
    traces = [t.scaled(opts["compute.scale"]) for t in traces]
    return {"model": plan.model, "source": source, "buckets": source["trace"]["buckets"],
            "traces": [{"forward_s": t.forward_s, "backward_s": t.backward_s, "codec_s": t.codec_s,
                        "optimizer_s": t.optimizer_s, "ready_s": list(t.ready_s)} for t in traces],
            "trace_step_s": max(t.compute_s for t in traces)}


def plans_and_jobs(argv: list[str]):
    """Every check before Ray starts: options, a plan per model, the record each replays."""
    from commbench.overrides import plan_from
    from commbench.results.store import records_of

    opts, overrides = COMMAND.parse(argv)
    models = opts["models"] or [None]
    plans = [plan_from([*overrides, *run_options(m)] if m else overrides) for m in models]
    if plans[0].nodes < 2:
        fail("replay needs nodes >= 2: an all-reduce on one rank moves no bytes")
    runs = records_of(plans[0].results_dir, "run")
    return opts, plans, [job_for(p, runs, opts) for p in plans]


def record_of(plan, job: dict[str, Any], out: dict[str, Any], opts: dict[str, Any],
              runs: list[dict[str, Any]]) -> dict[str, Any]:
    from commbench.results import setup
    from commbench.results.store import collective_record
    from commbench.stats import percentile

    source, iters, mode = job["source"], out["iters"], opts["mode"]
    payload = sum(b["payload_bytes"] for b in job["buckets"])
    if out["payloads"] != [payload]:
        fail(f"replay of {plan.model} sent {out['payloads']} bytes per iteration, the record says {payload}", code=1)
    med = {k: percentile([i[k] for i in iters], 50) for k in ("step_s", "exposed_comm_s", "comm_busy_s")}
    # back_to_back: no compute, so the step is the buckets' comm time and all of it is exposed
    record = {**collective_record(plan, "replay"), **setup.setup_of(source, ("device", "host_cpus")),
              "mode": mode, "model": plan.model, "model_kwargs": plan.model_kwargs,
              "trace_config_hash": source.get("config_hash"), "trace_nodes": source.get("nodes"), "bucket_bytes": [b["payload_bytes"] for b in job["buckets"]],
              "payload_bytes": payload, "iters": len(iters), "per_iter": iters,
              "step_time_s": med["step_s"], "step_time_p90_s": percentile([i["step_s"] for i in iters], 90),
              "exposed_comm_s": med["exposed_comm_s"],
              "exposed_comm_p90_s": percentile([i["exposed_comm_s"] for i in iters], 90),
              "comm_busy_s": med["comm_busy_s"]}
    if mode == "trace":
        record.update(compute_scale=opts["compute.scale"], compute_step_s=opts["compute.step_s"],
                      trace_step_s=job["trace_step_s"],
                      efficiency=job["trace_step_s"] / med["step_s"], compute_time_1_s=job["trace_step_s"])
        record["projected_efficiency"] = record["efficiency"]
    else:
        record.update(times_s=[i["step_s"] for i in iters], **projection(runs, source, med["step_s"]))
    return record


def projection(runs: list[dict[str, Any]], source: dict[str, Any], comm_s: float) -> dict[str, Any]:
    """back_to_back: t / (t + comm), t the step outside exposed comm of the nodes=1 run with the
    bucket record's compute setup."""
    from commbench.netmodel import efficiency
    from commbench.results import setup

    base = [r for r in setup.matching(runs, source, setup.COMPUTE) if r["nodes"] == 1]
    t = setup.non_comm_s(base[-1]) if base else None
    return {"compute_time_1_s": t, "projected_efficiency": efficiency(t, comm_s) if t else None}


def main(argv: list[str]) -> None:
    from commbench.comm.replay import replay_loop
    from commbench.results.store import append_record, path_of, records_of
    from commbench.sinks.predictions import replay_table

    opts, plans, jobs = plans_and_jobs(argv)
    if emulate_if_asked(plans[0], ["replay", *argv]):
        return
    runs = records_of(plans[0].results_dir, "run")
    cfg = {**plans[0].worker_config(), "iters": opts["iters"], "warmup_iters": opts["warmup_iters"],
           "replays": [{"buckets": [{"numel": b["payload_bytes"] // ITEMSIZE[b["dtype"]], "dtype": b["dtype"]}
                                    for b in j["buckets"]], "traces": j["traces"]} for j in jobs]}
    out = on_ray(plans[0], replay_loop, cfg)
    records = [record_of(p, j, o, opts, runs) for p, j, o in zip(plans, jobs, out["replays"])]
    for r in records:
        append_record(path_of(plans[0].results_dir, "replay"), r)
    emit(records if len(records) > 1 else records[0], opts["format"], lambda: replay_table(records))
