"""`commbench bench`: what commbench itself costs, as ratios measured in one run.

- Hook overhead: the same DDP step, on the same Ray workers, with DDP's built-in all-reduce (bare),
  with commbench's counting hook plus its per-step bookkeeping (instrumented), and with torch's
  `noop_hook` (no communication: the compute-only baseline). Variants alternate in rounds so drift
  on a shared machine spreads over all of them.
- Wall time: `python -m commbench model=... nodes=... steps=...` from start to record, in a subprocess.
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
    does all of a run's per-step bookkeeping (split and buffer spans) too."""
    from commbench.comm.clocks import clock_for
    from commbench.comm.group import gather_to_rank0, join_group
    from commbench.stats import elementwise_max
    from commbench.worker import BufferBroadcasts, step_figures, step_fn, wrap_model

    rank, world, device = join_group(cfg)
    clock = clock_for(device)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(cfg["rounds"]):
        for variant in VARIANTS:
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


def overhead_ratios(times: dict[str, list[float]]) -> dict[str, float]:
    from commbench.stats import percentile

    median = {v: percentile(t, 50) for v, t in times.items()}
    return {
        **{f"{v}_step_s": m for v, m in median.items()},
        "instrumented_over_bare": median["instrumented"] / median["bare"],
        "noop_over_bare": median["noop"] / median["bare"],
    }


def wall_time(overrides: list[str]) -> dict[str, Any]:
    """Start to record of a real run, as a user would wait for it."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "commbench", *overrides, f"results_dir={tmp}", "resume=false"],
                             capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(f"the timed run failed: {out.stderr.strip().splitlines()[-1:]}")
        record = json.loads((Path(tmp) / "runs.jsonl").read_text().splitlines()[-1])
    return {"command": "python -m commbench " + " ".join(overrides), "wall_s": wall,
            "ray_init_s": record["ray_init_s"], "ray_overhead_s": record["ray_overhead_s"],
            "step_time_s": record["step_time_s"], "steps": record["steps"]}
