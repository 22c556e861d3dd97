"""`python -m commbench [run] key=value ...`: one data-parallel run, or with -m a sweep (a record per
cell). A Hydra app over conf/; --hydra-help, --cfg and --info reach Hydra's own output."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from commbench.comm.schemes import SCHEMES
from commbench.errors import PlanError, fail
from commbench.options import Command
from commbench.overrides import MULTIRUN_FLAGS, checked_cells, nodes_first
from commbench.settings import help_lines

COMMAND = Command("run", "Train a model data-parallel on Ray and record the bytes each step sends and where its "
                  "time goes (the default command).", run_options=True,
                  examples=("model=squeezenet nodes=8", "-m model=alexnet,squeezenet nodes=1,2,4,8",
                            "model=alexnet nodes=2 cluster=emulated network.bandwidth=100mbit"))

# Every key of conf/ a run reads, with what it does: the declared ones from commbench/settings.py, the
# groups' own here (tests/test_help.py checks the list and the config agree).
RUN_OPTIONS = {
    "model": "a zoo model (conf/model/; list: python -m commbench models), variants as model.alpha=0.5; or any other: "
             "model=torchvision|timm model.name=..., model=custom model._target_=package.module.factory",
    "model.num_classes": "classifier outputs (the last layer's bytes depend on it)",
    **{("cluster" if key == "cluster.kind" else key): text for key, text in help_lines().items()},
    "network": "the emulated links (config group conf/network/)",
    "network.bandwidth": "emulated link rate: 100mbit, 1gbit, 1.25GB/s",
    "network.latency": "emulated one-way latency: 0.5ms (needs netem)",
    "network.loss": "emulated packet loss, percent (needs netem)",
    "compression": "; ".join(f"{name} ({scheme.summary}"
                             + "".join(f", compression.{k}={v}" for k, v in scheme.defaults().items()) + ")"
                             for name, scheme in SCHEMES.items()),
    "logging": "wandb (offline by default) or none",
}


def defaults() -> dict[str, Any]:
    """The default value of every RUN_OPTIONS key, from conf/ (groups: the chosen option)."""
    from commbench.config import compose
    from commbench.overrides import default_option

    cfg = compose([])
    out = {}
    for key in RUN_OPTIONS:
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):  # a config group: the option conf/config.yaml's defaults list chooses
            node = default_option(key)
        out[key] = node
    return out


def tool_help() -> str:
    from commbench.commands import MODULES, module
    from commbench.options import show_default

    lines = ["commbench: how many bytes data-parallel training pushes through the network each step, and how "
             "well it scales (AlexNet vs SqueezeNet and other compact CNNs), measured with PyTorch DDP on Ray.",
             "", "usage: python -m commbench [command] [key=value ...]   (no command: run)",
             "       python -m commbench COMMAND --help", "", "commands:"]
    width = max(map(len, MODULES)) + 2
    lines += [f"  {name:<{width}}{module(name).COMMAND.summary}" for name in MODULES]
    lines += ["", "run options (key=value; -m makes comma lists a sweep):"]
    values = defaults()
    width = max(map(len, RUN_OPTIONS)) + 2
    lines += [f"  {k:<{width}}{text} (default: {show_default(values[k])})" for k, text in RUN_OPTIONS.items()]
    lines += ["", "results: ${results_dir}/runs.jsonl (one record per run), busbw.jsonl, replay.jsonl; "
              "python -m commbench report / export read them.",
              "Hydra's own help and config: --hydra-help, --cfg job, --info.", "",
              "examples:", *(f"  python -m commbench {e}" for e in COMMAND.examples)]
    return "\n".join(lines)


def run_cell(cfg: dict[str, Any], overrides: list[str] | None = None, cell: tuple[int, int] | None = None,
             group: str | None = None) -> None:
    """One run (one sweep cell, `cell` = (k, total)): plan, skip if recorded, run on Ray, append the
    record, then show it and log it to W&B."""
    from commbench.commands.common import emulate_if_asked
    from commbench.plan import make_plan
    from commbench.results.store import append_record, failed_record, finished_hashes
    from commbench.sweep import announce

    try:
        plan = make_plan(cfg)
        wandb = wandb_settings(cfg, plan.results_dir, group)
    except (PlanError, ValueError) as exc:
        fail(str(exc))
    if plan.resume and plan.config_hash() in finished_hashes(plan.runs_file):
        skipped(plan, cell)
        return

    from commbench import runner
    from commbench.sinks import wandb_log
    from commbench.sweep import cell_failed, ran_a_cell, warn_once

    ran_a_cell()
    try:
        emulated = emulate_if_asked(plan, list(overrides or []))
    except SystemExit as exc:
        if cell is None or not exc.code:
            raise
        cell_failed()  # the driver inside the cluster said why (and recorded a run that failed)
        return
    if emulated:  # the driver inside the cluster wrote the record
        show(newest_record(plan), plan, wandb, cell, table=False)
        return
    try:
        wandb_log.check(wandb)  # before Ray starts: say now that W&B will not work
    except wandb_log.WandbConfigError as exc:
        fail(str(exc))
    warn_once(f"steps={plan.steps}: a p90 over fewer than 5 timed steps is not meaningful", plan.steps < 5)
    announce(cell, f"{plan.model} nodes={plan.nodes} on {plan.where} ...", start=True)
    from commbench import pool
    from commbench.sinks.progress import Phases

    try:
        with Phases(f"{plan.model} nodes={plan.nodes}", plan.nodes) as phases:
            record = pool.run(plan, phases)
    except PlanError as exc:
        fail(str(exc))
    except runner.RunError as exc:
        append_record(plan.runs_file, failed_record(plan, str(exc)))
        message = f"{plan.model} nodes={plan.nodes}: {exc} (recorded as failed in {plan.runs_file})"
        if cell is None:
            fail(message)
        print(f"commbench: error: {message}", file=sys.stderr)  # the sweep goes on with the next cell
        cell_failed()
        return
    append_record(plan.runs_file, record)
    show(record, plan, wandb, cell, table=cell is None)


def skipped(plan, cell: tuple[int, int] | None) -> None:
    """A cell resume skips: one line with the figures recorded for it."""
    from commbench.results.scaling import efficiency_of
    from commbench.results.store import records_of
    from commbench.sweep import announce, cell_line

    runs = records_of(plan.results_dir, "run")
    mine = [r for r in runs if r.get("config_hash") == plan.config_hash()]
    line = cell_line(mine[-1], efficiency_of(mine[-1], runs)) if mine else f"{plan.model} nodes={plan.nodes}"
    announce(cell, start=True, text=f"recorded earlier, skipped (resume=true; config_hash {plan.config_hash()}): {line}")


def wandb_settings(cfg: dict[str, Any], results_dir: str, group: str | None):
    """logging.wandb, validated; off for a driver inside an emulated cluster (its parent logs)."""
    from commbench.commands.common import inside_emulated
    from commbench.sinks import wandb_log

    settings = wandb_log.settings_from(cfg.get("logging"), results_dir, group)
    if inside_emulated():
        return wandb_log.settings_from(None, results_dir)
    return settings


def newest_record(plan) -> dict[str, Any]:
    from commbench.results.store import read_records

    mine = [r for r in read_records(plan.runs_file).records
            if r.get("config_hash") == plan.config_hash() and r.get("status") == "ok"]
    if not mine:
        fail(f"the emulated cluster's driver finished without a record in {plan.runs_file}")
    return mine[-1]


def show(record: dict[str, Any], plan, wandb, cell: tuple[int, int] | None, table: bool) -> None:
    """The record on the terminal (a table for a single run, a line per sweep cell) and in W&B."""
    from commbench.results.scaling import efficiency_of
    from commbench.results.store import records_of
    from commbench.sinks import wandb_log
    from commbench.sinks.console import print_run
    from commbench.sweep import announce, cell_line

    efficiency = efficiency_of(record, records_of(plan.results_dir, "run"))
    if table:
        print_run(record, str(plan.runs_file))
    else:
        announce(cell, cell_line(record, efficiency))
    where = wandb_log.log_run(wandb, record, efficiency)
    if where:
        print(f"W&B run ({wandb.effective_mode}): {where}")


def main(argv: list[str]) -> None:
    import hydra
    from omegaconf import OmegaConf

    from commbench.config import config_path
    from commbench.settings import register

    if any(a in ("--help", "-h") for a in argv):
        print(tool_help())
        return
    argv = nodes_first(argv)  # a sweep runs world size by world size: workers start once per size
    plans = checked_cells(argv)
    total = len(plans) if any(a in MULTIRUN_FLAGS for a in argv) else None
    from commbench.pool import POOL

    POOL.expect(plans)  # an embedded Ray sized for the sweep's largest worker group
    register()  # the schema conf/config.yaml names first

    @hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
    def app(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        cell = (hc.job.num + 1, total) if total else None
        group = Path(hc.sweep.dir).name if total else None
        run_cell(OmegaConf.to_container(cfg, resolve=True), list(hc.overrides.task), cell, group)

    # --hydra-help is Hydra's app help (--help), titled commbench (hydra.help.app_name in conf/)
    sys.argv = [sys.argv[0], *("--help" if a == "--hydra-help" else a for a in argv)]
    from commbench.sweep import SWEEP

    try:
        app()
    except KeyboardInterrupt:
        raise  # Ray's shutdown at exit stops the workers
    except BaseException:
        POOL.close()
        raise
    POOL.close()  # the worker groups a run or a sweep started
    if SWEEP.failed:
        fail(f"{SWEEP.failed} of {total} cells failed (recorded as failed; the same command reruns them)")
