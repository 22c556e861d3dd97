"""`commbench bench`: what commbench itself costs, as ratios measured in one run (commbench/bench.py),
each against its goal, in words; the figures also land in bench.jsonl."""

from __future__ import annotations

from typing import Any

from commbench.options import Command, Option, boolean, positive_int

COMMAND = Command("bench", "Measure commbench's own cost: counting-hook overhead vs bare DDP, start-to-record "
                  "time of a nodes=8 run with where it goes, and how fast predict and validate published answer; "
                  "each against its goal.",
                  (Option("hook", boolean, True, "time the counting hook against bare DDP on Ray"),
                   Option("rounds", positive_int, 5, "alternating rounds of bare / instrumented / noop DDP"),
                   Option("wall", boolean, True, "also time python -m commbench model=squeezenet nodes=8 steps=20"),
                   Option("wall_runs", positive_int, 3, "how many times (the median counts)"),
                   Option("answers", boolean, True, "time predict and validate published, their inputs cached")),
                  run_options=True, examples=("bench", "bench rounds=3 wall=false nodes=2",
                                              "bench hook=false wall=false"))

BENCH_DEFAULTS = ["model=squeezenet", "nodes=2", "steps=10", "warmup=3"]
WALL_RUN = ["model=squeezenet", "nodes=8", "steps=20"]
HOOK_GOAL = 1.01  # instrumented / bare step time
WALL_GOAL_S = 35.0  # nodes=8 steps=20, start to record
ANSWERS = {  # command -> goal (s), start to exit with its inputs cached
    ("predict", "model=resnet50", "nodes=16", "cluster.gpus_per_node=8", "network.bandwidth=400gbit",
     "network.latency=5us", "compute_s=0.097"): 0.5,
    ("validate", "published"): 2.0,
}
ANSWER_RUNS = 5


def main(argv: list[str]) -> None:
    opts, overrides = COMMAND.parse(argv)
    from commbench.bench import answer_time, wall_time
    from commbench.overrides import plan_from
    from commbench.results.store import append_record
    from commbench.sinks.console import console

    plan = plan_from(BENCH_DEFAULTS + overrides)
    out = plan.runs_file.with_name("bench.jsonl")
    hook = hook_overhead(plan, opts["rounds"], out) if opts["hook"] else None
    walls: list[dict[str, Any]] = []
    runs = opts["wall_runs"] if opts["wall"] else 0
    for k in range(runs):
        console.print(f"bench: start to record, python -m commbench {' '.join(WALL_RUN)} ({k + 1}/{runs}) "
                      "...", highlight=False)
        walls.append({"bench": "wall_time", **wall_time(WALL_RUN)})
        append_record(out, walls[-1])
    answers: list[dict[str, Any]] = []
    for args, goal in ANSWERS.items() if opts["answers"] else ():
        console.print(f"bench: python -m commbench {' '.join(args)}, {ANSWER_RUNS} times ...", highlight=False)
        answers.append({"bench": "answer_time", "goal_s": goal, **answer_time(list(args), ANSWER_RUNS)})
        append_record(out, answers[-1])
    console.print(verdicts(hook, walls, answers))
    console.print(f"figures: {out}", highlight=False)


def hook_overhead(plan, rounds: int, out) -> dict[str, Any]:
    from commbench.bench import bench_loop, overhead_ratios
    from commbench.commands.common import on_ray
    from commbench.results.store import append_record
    from commbench.sinks.console import console

    console.print(f"bench: hook overhead, {plan.model} on {plan.nodes} workers, {rounds} rounds of bare / "
                  f"instrumented / noop x {plan.steps} steps ...", highlight=False)
    times = on_ray(plan, bench_loop, {**plan.worker_config(), "rounds": rounds})
    hook = {"bench": "hook_overhead", "model": plan.model, "nodes": plan.nodes, "rounds": rounds,
            "steps_per_variant": len(times["bare"]), **overhead_ratios(times, rounds)}
    append_record(out, hook)
    return hook


def spread(values: list[float], fmt: str) -> str:
    return f"{format(min(values), fmt)}–{format(max(values), fmt)}"


def verdicts(hook: dict[str, Any] | None, walls: list[dict[str, Any]], answers: list[dict[str, Any]] = ()):
    """Each measure, its goal and whether this run met it (the median; the spread shows the noise)."""
    from rich.table import Table

    from commbench.stats import percentile

    table = Table(title="commbench bench: what commbench itself costs, against its goals")
    for column in ("measure", "median", "spread", "goal", "verdict"):
        table.add_column(column, justify="right" if column in ("median", "spread") else "left")
    if hook:
        ratio, rounds = hook["instrumented_over_bare"], hook["instrumented_over_bare_rounds"]
        table.add_row(f"instrumented / bare step time ({hook['model']}, {hook['nodes']} workers, median of "
                      f"{len(rounds)} alternating rounds)", f"{ratio:.3f}", spread(rounds, ".3f"), f"≤ {HOOK_GOAL}",
                      verdict(ratio <= HOOK_GOAL))
        table.add_row("noop / bare (the share of a step that is communication)", f"{hook['noop_over_bare']:.3f}",
                      spread(hook["noop_over_bare_rounds"], ".3f"), "", "")
    if walls:
        def median(key: str) -> float:
            return percentile([w[key] for w in walls], 50)

        table.add_row(f"{walls[0]['command']}: start to record (median of {len(walls)})",
                      f"{median('start_to_record_s'):.1f} s", spread([w["start_to_record_s"] for w in walls], ".1f") + " s",
                      f"≤ {WALL_GOAL_S:.0f} s", verdict(median("start_to_record_s") <= WALL_GOAL_S))
        for key, what in (("driver_s", "  driver: Python, Hydra, plan, record"), ("ray_init_s", "  Ray's start"),
                          ("workers_start_s", "  worker group: processes, imports, process group"),
                          ("model_setup_s", "  model + DDP in the workers"),
                          ("steps_s", f"  {walls[0]['steps']} steps (warmup + timed)")):
            table.add_row(what, f"{median(key):.1f} s", spread([w[key] for w in walls], ".1f") + " s", "", "")
        table.add_row("start to the command's exit (Ray's shutdown after the record)", f"{median('exit_s'):.1f} s",
                      spread([w["exit_s"] for w in walls], ".1f") + " s", "", "")
    for a in answers:
        table.add_row(f"{a['command']}: start to exit, inputs cached (median of {len(a['times_s'])})",
                      f"{a['median_s']:.2f} s", spread(a["times_s"], ".2f") + " s", f"≤ {a['goal_s']} s",
                      verdict(a["median_s"] <= a["goal_s"]))
    return table


def verdict(ok: bool) -> str:
    return "[green]pass[/green]" if ok else "[red]fail[/red]"

