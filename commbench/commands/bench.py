"""`commbench bench`: what commbench itself costs, as ratios measured in one run (commbench/bench.py)."""

from __future__ import annotations

import json

from commbench.options import Command, Option, boolean, positive_int

COMMAND = Command("bench", "Measure commbench's own cost: counting-hook overhead vs bare DDP, and start-to-record "
                  "wall time of a nodes=8 run.",
                  (Option("rounds", positive_int, 5, "alternating rounds of bare / instrumented / noop DDP"),
                   Option("wall", boolean, True, "also time python -m commbench model=squeezenet nodes=8 steps=20")),
                  run_options=True, examples=("bench", "bench rounds=3 wall=false nodes=2"))

BENCH_DEFAULTS = ["model=squeezenet", "nodes=2", "steps=10", "warmup=3"]
WALL_RUN = ["model=squeezenet", "nodes=8", "steps=20"]


def main(argv: list[str]) -> None:
    opts, overrides = COMMAND.parse(argv)
    from commbench.bench import bench_loop, overhead_ratios, wall_time
    from commbench.commands.common import on_ray
    from commbench.overrides import plan_from
    from commbench.results.store import append_record
    plan = plan_from(BENCH_DEFAULTS + overrides)
    out = plan.runs_file.with_name("bench.jsonl")
    times = on_ray(plan, bench_loop, {**plan.worker_config(), "rounds": opts["rounds"]})
    results = [{"bench": "hook_overhead", "model": plan.model, "nodes": plan.nodes,
                "steps_per_variant": len(times["bare"]), **overhead_ratios(times)}]
    append_record(out, results[-1])
    if opts["wall"]:
        results.append({"bench": "wall_time", **wall_time(WALL_RUN)})
        append_record(out, results[-1])
    print(json.dumps(results, indent=2))
