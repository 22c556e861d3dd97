"""Entry point: `python -m commbench [run|models|bench|...] key=value ...` (also the `commbench` script).

`run` (the default) is a Hydra app over conf/; `-m` sweeps, one record per cell. The other
subcommands live in cli.py.
"""

from __future__ import annotations

import sys
from typing import Any

from commbench.cli import SUBCOMMANDS, emulate_if_asked, fail, precheck_overrides
from commbench.config import config_path


def run_cell(cfg: dict[str, Any], overrides: list[str] | None = None) -> None:
    """One run (one sweep cell): plan, skip if recorded, run on Ray, append the record, print it."""
    from commbench.plan import PlanError, make_plan
    from commbench.records import append_record, failed_record, finished_hashes

    try:
        plan = make_plan(cfg)
    except PlanError as exc:
        fail(str(exc))
    if plan.resume and plan.config_hash() in finished_hashes(plan.runs_file):
        print(f"commbench: skip {plan.model} nodes={plan.nodes}: config_hash {plan.config_hash()} "
              f"already recorded in {plan.runs_file} (resume=true)")
        return

    if emulate_if_asked(plan, list(overrides or [])):
        return

    from commbench import runner
    from commbench.sinks.console import print_run

    try:
        record = runner.run(plan)
    except PlanError as exc:
        fail(str(exc))
    except runner.RunError as exc:
        append_record(plan.runs_file, failed_record(plan, str(exc)))
        fail(f"{plan.model} nodes={plan.nodes}: {exc} (recorded as failed in {plan.runs_file})")
    append_record(plan.runs_file, record)
    print_run(record, str(plan.runs_file))


def run_hydra(argv: list[str]) -> None:
    import hydra
    from omegaconf import OmegaConf

    precheck_overrides(argv)

    @hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
    def app(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig

        run_cell(OmegaConf.to_container(cfg, resolve=True), list(HydraConfig.get().overrides.task))

    sys.argv = [sys.argv[0], *argv]
    app()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        SUBCOMMANDS[argv[0]](argv[1:])
    elif argv and argv[0] == "run":
        run_hydra(argv[1:])
    else:
        run_hydra(argv)


if __name__ == "__main__":
    main()
