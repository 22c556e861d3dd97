"""`commbench replay`: a recorded run's gradient buckets, in DDP's order, through the same all-reduce
with no compute, on N real ranks; appended to replay.jsonl with the setup identity.

The buckets come from the newest run of the model whose bucket layout is this plan's (model, variant,
compression, bucket cap); the projected efficiency uses the nodes=1 run with that run's compute setup.
"""

from __future__ import annotations

from typing import Any

from commbench.commands.common import COLLECTIVE_OPTIONS, collective_start, emit, on_ray
from commbench.errors import fail
from commbench.options import FORMAT, Command

COMMAND = Command("replay", "Replay a recorded run's gradient buckets through all-reduces with no compute: what "
                  "one step's exchange costs without training's CPU contention.",
                  (*COLLECTIVE_OPTIONS, FORMAT), run_options=True,
                  examples=("replay model=alexnet nodes=4",
                            "replay model=squeezenet nodes=8 cluster=emulated network.bandwidth=100mbit"))


def trace_record(plan, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest run whose buckets are laid out as this plan's would be; one line when there is none."""
    from commbench.comm.schemes import REPLAYABLE, collective_of
    from commbench.results import setup

    if collective_of(plan.compression) != "all_reduce":
        fail(f"replay issues all-reduces; compression={plan.compression} sends its buckets through all-gathers")
    if plan.compression not in REPLAYABLE:
        fail(f"replay sends each recorded bucket as one all-reduce; compression={plan.compression} computes its "
             f"payload anew every step in several (replayable: {', '.join(sorted(REPLAYABLE))})")
    like = {"model": plan.model, "model_kwargs": plan.model_kwargs, **plan.setup()}
    of_model = [r for r in runs if r.get("model") == plan.model and r.get("buckets")]
    same = setup.matching(of_model, like, setup.BUCKETS)
    if same:
        return same[-1]
    if of_model:
        fail(f"no run of {plan.model} with this bucket layout in {plan.runs_file}: the newest differs in "
             + "; ".join(setup.differences(of_model[-1], like, setup.BUCKETS)))
    fail(f"no record of model {plan.model!r} with buckets in {plan.runs_file}: "
         f"run `python -m commbench model={plan.model} nodes=2` first")


def baseline(runs: list[dict[str, Any]], trace: dict[str, Any]) -> dict[str, Any] | None:
    """The newest nodes=1 run with the trace's compute setup (same threads, batch, image, device)."""
    from commbench.results import setup

    base = [r for r in setup.matching(runs, trace, setup.COMPUTE) if r["nodes"] == 1]
    return base[-1] if base else None


def main(argv: list[str]) -> None:
    from commbench.comm.replay import replay_loop
    from commbench.netmodel import efficiency
    from commbench.results import setup
    from commbench.results.store import append_record, collective_record, path_of, records_of
    from commbench.sinks.console import replay_table
    from commbench.stats import percentile

    started = collective_start(COMMAND, argv)
    if started is None:
        return
    opts, plan = started
    runs = records_of(plan.results_dir, "run")
    trace = trace_record(plan, runs)
    buckets = sorted(trace["buckets"], key=lambda b: b["index"])
    out = on_ray(plan, replay_loop, {**plan.worker_config(), "buckets": buckets, "iters": opts["iters"],
                                     "warmup_iters": opts["warmup_iters"]})
    payload = sum(b["payload_bytes"] for b in buckets)
    if out["payloads"] != [payload]:
        fail(f"replay sent {out['payloads']} bytes per iteration, the record says {payload}", code=1)
    base = baseline(runs, trace)
    record = {**collective_record(plan, "replay"), "model": plan.model, "model_kwargs": plan.model_kwargs,
              "trace_config_hash": trace.get("config_hash"), "bucket_bytes": [b["payload_bytes"] for b in buckets],
              "payload_bytes": payload, "iters": len(out["times_s"]), "comm_time_s": percentile(out["times_s"], 50),
              "comm_time_p90_s": percentile(out["times_s"], 90), "times_s": out["times_s"],
              "compute_time_1_s": setup.non_comm_s(base) if base else None}
    record["projected_efficiency"] = (efficiency(record["compute_time_1_s"], record["comm_time_s"])
                                      if record["compute_time_1_s"] else None)
    append_record(path_of(plan.results_dir, "replay"), record)
    emit(record, opts["format"], lambda: replay_table(record))
