"""`commbench bench`: what commbench itself costs, as ratios measured in one run.

- Hook overhead: the same DDP step, on the same Ray workers, with DDP's built-in all-reduce (bare),
  with commbench's counting hook plus its per-step bookkeeping (instrumented), and with torch's
  `noop_hook` (no communication: the compute-only baseline). Variants alternate in rounds, each
  round in a rotated order, so drift on a shared machine and the order spread over all of them; the
  ratio is the median of the per-round ratios.
- Start to record: `python -m commbench model=... nodes=... steps=...` in a subprocess, from its start to
  its record in runs.jsonl, and where that time went.
- Answer time: `predict` and `validate published` in a subprocess once their inputs are cached (a first
  call fills the cache), from start to exit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("bare", "instrumented", "noop")


def _register(variant: str, ddp, world: int, clock):
    """Give the DDP wrapper the variant's hook; returns the counter when commbench's hook is used."""
    from torch.distributed.algorithms.ddp_comm_hooks.debugging_hooks import noop_hook

    from commbench.comm.compression import hook_for
    from commbench.comm.hooks import ByteCounter

    if variant == "instrumented":
        counter = ByteCounter(world, reduce=world > 1, clock=clock)
        ddp.register_comm_hook(*hook_for("none", {}, counter))
        return counter
    if variant == "noop":
        ddp.register_comm_hook(None, noop_hook)
    return None


def bench_loop(cfg: dict[str, Any]) -> dict[str, list[float]] | None:
    """Per variant, step times of the slowest rank (rank 0 returns them). The instrumented variant
    does a run's per-step bookkeeping (split and buffer spans) too; a run's progress reports to the
    driver (at most one a second, worker.Progress) are left out."""
    from commbench.comm.clocks import clock_for
    from commbench.comm.group import gather_to_rank0, join_group
    from commbench.stats import elementwise_max
    from commbench.worker import BufferBroadcasts, step_figures, step_fn, wrap_model

    rank, world, device = join_group(cfg)
    clock = clock_for(device)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(cfg["rounds"]):
        for variant in VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]:  # each variant goes first in some round
            _, ddp = wrap_model(cfg, device)
            counter = _register(variant, ddp, world, clock)
            buffers = BufferBroadcasts(ddp, clock, world) if counter is not None else None
            step = step_fn(cfg, ddp, device, rank, clock)
            for i in range(cfg["warmup"] + cfg["steps"]):
                if counter is not None:
                    counter.start_step()
                stamps, _loss = step()
                if counter is not None:
                    fig = step_figures(clock, stamps, counter.end_step(), *reversed(buffers.take()), counter.reduce)
                    elapsed = fig["step"]
                else:
                    [elapsed] = clock.seconds(stamps[0], [stamps[3]])
                if i >= cfg["warmup"]:
                    times[variant].append(elapsed)
    gathered = gather_to_rank0(times)
    if gathered is None:
        return None
    return {v: elementwise_max([r[v] for r in gathered]) for v in VARIANTS}


def overhead_ratios(times: dict[str, list[float]], rounds: int) -> dict[str, Any]:
    """Per round (each variant's median step in that round, so drift between rounds cancels), the
    instrumented / bare and noop / bare ratios; their median over rounds and their spread."""
    from commbench.stats import percentile

    per_round = len(times["bare"]) // rounds
    def rounds_of(variant: str) -> list[float]:
        t = times[variant]
        return [percentile(t[r * per_round:(r + 1) * per_round], 50) for r in range(rounds)]

    bare = rounds_of("bare")
    out: dict[str, Any] = {f"{v}_step_s": percentile(times[v], 50) for v in VARIANTS}
    for variant in ("instrumented", "noop"):
        ratios = [v / b for v, b in zip(rounds_of(variant), bare)]
        out.update({f"{variant}_over_bare": percentile(ratios, 50), f"{variant}_over_bare_rounds": ratios})
    return out


def wall_time(overrides: list[str]) -> dict[str, Any]:
    """Start to record of a real run, as a user waits for it: from the command's start to its record
    in runs.jsonl, with where the time went (from the record's own clocks)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        out = subprocess.run([sys.executable, "-m", "commbench", *overrides, f"results_dir={tmp}", "resume=false",
                              "logging=none"], capture_output=True, text=True)
        wall = time.time() - t0
        if out.returncode != 0:
            raise RuntimeError(f"the timed run failed: {out.stderr.strip().splitlines()[-1:]}")
        runs = Path(tmp) / "runs.jsonl"
        start_to_record = runs.stat().st_mtime - t0
        record = json.loads(runs.read_text().splitlines()[-1])
    return {"command": "python -m commbench " + " ".join(overrides), "start_to_record_s": start_to_record,
            "exit_s": wall, **startup_breakdown(record, start_to_record)}


def startup_breakdown(record: dict[str, Any], start_to_record: float) -> dict[str, float]:
    """Where a run's start-to-record went: the driver (Python, Hydra, the plan, writing), Ray's start,
    the worker group's start (processes, imports, process group), the model and DDP, the steps."""
    from commbench.sinks.console import group_start_s, train_loop_s

    steps = train_loop_s(record) - record["worker_setup_s"]
    return {"driver_s": start_to_record - record["run_s"], "ray_init_s": record["ray_init_s"],
            "workers_start_s": group_start_s(record), "model_setup_s": record["worker_setup_s"],
            "steps_s": steps, "steps": record["steps"] + record["warmup"], "step_time_s": record["step_time_s"]}


def answer_time(args: list[str], runs: int) -> dict[str, Any]:
    """Start to exit of `python -m commbench ARGS`, `runs` times after one untimed call that fills the
    caches (bucket layouts), run in an empty folder (so its default results folder is empty)."""
    from commbench.stats import percentile

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(runs + 1):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "commbench", *args], cwd=tmp, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"the timed command failed: {(out.stderr.strip().splitlines() or [''])[-1]}")
            if k:
                times.append(time.perf_counter() - t0)
    return {"command": "python -m commbench " + " ".join(args), "median_s": percentile(times, 50), "times_s": times}
