"""Entry point: `python -m commbench [run|models|bench|...] key=value ...` (also the `commbench` script).

`run` (the default) is a Hydra app over conf/; `-m` sweeps, one record per cell. The other
subcommands live in cli.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from commbench.cli import SUBCOMMANDS, emulate_if_asked, fail, inside_emulated, precheck_overrides
from commbench.config import config_path
from commbench.sweep import MULTIRUN_FLAGS, PRINT_FLAGS, sweep_cells


def run_cell(cfg: dict[str, Any], overrides: list[str] | None = None, cell: tuple[int, int] | None = None,
             group: str | None = None) -> None:
    """One run (one sweep cell, `cell` = (k, total)): plan, skip if recorded, run on Ray, append the
    record, then show it and log it to W&B."""
    from commbench.plan import PlanError, make_plan
    from commbench.records import append_record, failed_record, finished_hashes
    from commbench.sweep import announce

    try:
        plan = make_plan(cfg)
        wandb = wandb_settings(cfg, plan.results_dir, group)
    except (PlanError, ValueError) as exc:
        fail(str(exc))
    if plan.resume and plan.config_hash() in finished_hashes(plan.runs_file):
        announce(cell, f"skip {plan.model} nodes={plan.nodes}: config_hash {plan.config_hash()} "
                       f"already recorded in {plan.runs_file} (resume=true)")
        return

    if emulate_if_asked(plan, list(overrides or [])):  # the driver inside the cluster wrote the record
        show(newest_record(plan), plan, wandb, cell, table=False)
        return

    from commbench import runner
    from commbench.sinks import wandb_log

    try:
        wandb_log.check(wandb)  # before Ray starts: say now that W&B will not work
    except wandb_log.WandbConfigError as exc:
        fail(str(exc))
    announce(cell, f"{plan.model} nodes={plan.nodes} on {plan.cluster_kind} ...")
    try:
        record = runner.run(plan)
    except PlanError as exc:
        fail(str(exc))
    except runner.RunError as exc:
        append_record(plan.runs_file, failed_record(plan, str(exc)))
        fail(f"{plan.model} nodes={plan.nodes}: {exc} (recorded as failed in {plan.runs_file})")
    append_record(plan.runs_file, record)
    show(record, plan, wandb, cell, table=cell is None)


def wandb_settings(cfg: dict[str, Any], results_dir: str, group: str | None):
    """logging.wandb, validated; off for a driver inside an emulated cluster (its parent logs)."""
    from commbench.sinks import wandb_log

    settings = wandb_log.settings_from(cfg.get("logging"), results_dir, group)
    if inside_emulated():
        return wandb_log.settings_from(None, results_dir)
    return settings


def newest_record(plan) -> dict[str, Any]:
    from commbench.records import read_records

    mine = [r for r in read_records(plan.runs_file).records
            if r.get("config_hash") == plan.config_hash() and r.get("status") == "ok"]
    if not mine:
        fail(f"the emulated cluster's driver finished without a record in {plan.runs_file}")
    return mine[-1]


def show(record: dict[str, Any], plan, wandb, cell: tuple[int, int] | None, table: bool) -> None:
    """The record on the terminal (a table for a single run, a line per sweep cell) and in W&B."""
    from commbench.records import read_records
    from commbench.scaling import efficiency_of
    from commbench.sinks import wandb_log
    from commbench.sinks.console import print_run
    from commbench.sweep import announce, cell_line

    efficiency = efficiency_of(record, read_records(plan.runs_file).records)
    if table:
        print_run(record, str(plan.runs_file))
    else:
        announce(cell, cell_line(record, efficiency))
    where = wandb_log.log_run(wandb, record, efficiency)
    if where:
        print(f"W&B run ({wandb.effective_mode}): {where}")


def checked_cells(argv: list[str]) -> list[list[str]]:
    """Every cell's overrides, each validated into a plan: bad input anywhere in a sweep is one line
    and exit 2 before the first cell starts Ray (Hydra would answer some with a traceback)."""
    from commbench.cli import plan_from

    precheck_overrides(argv)
    if any(a in PRINT_FLAGS for a in argv):  # Hydra prints config or help and runs nothing
        if any(a in MULTIRUN_FLAGS for a in argv):
            fail("-m runs a sweep and --cfg/--info/--help print the config: give one of them")
        return []
    try:
        cells = sweep_cells(argv)
    except ValueError as exc:
        fail(str(exc))
    for cell in cells:
        plan_from(cell)
    return cells


def run_hydra(argv: list[str]) -> None:
    import hydra
    from omegaconf import OmegaConf

    cells = checked_cells(argv)
    total = len(cells) if any(a in MULTIRUN_FLAGS for a in argv) else None

    @hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
    def app(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        cell = (hc.job.num + 1, total) if total else None
        group = Path(hc.sweep.dir).name if total else None
        run_cell(OmegaConf.to_container(cfg, resolve=True), list(hc.overrides.task), cell, group)

    sys.argv = [sys.argv[0], *argv]
    app()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            SUBCOMMANDS[argv[0]](argv[1:])
        elif argv and argv[0] == "run":
            run_hydra(argv[1:])
        else:
            run_hydra(argv)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run in flight is not recorded, so resume reruns it
        print("commbench: interrupted: finished runs are recorded; the same command resumes with the first "
              "unfinished one", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
