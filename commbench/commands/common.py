"""What several commands share: running a worker function on Ray, printing a table or JSON, and the
start of busbw and replay (a plan of 2+ ranks, on an emulated cluster when asked)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

from commbench.errors import PlanError, fail
from commbench.options import Command, Option, positive_int
from commbench.overrides import plan_from


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
    from commbench.sinks.console import ANSWER_WIDTH, console

    console.print(table(), width=ANSWER_WIDTH)


def results_file(results_dir: str, name: str) -> Path:
    return Path(results_dir).expanduser().resolve() / name


COLLECTIVE_OPTIONS = (
    Option("iters", positive_int, 20, "timed iterations"),
    Option("warmup_iters", positive_int, 2, "untimed iterations first"),
)


def collective_start(command: Command, argv: list[str]):
    """The shared start of busbw and replay: options, a validated plan of at least 2 ranks, and the
    emulated cluster when asked. None once an emulated cluster has run the command; else (options, plan)."""
    opts, overrides = command.parse(argv)
    plan = plan_from(overrides)
    if plan.nodes < 2:
        fail(f"{command.name} needs nodes >= 2: an all-reduce on one rank moves no bytes")
    if emulate_if_asked(plan, [command.name, *argv]):
        return None
    return opts, plan
