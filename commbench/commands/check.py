"""`commbench check`: a run's or a sweep's arguments validated, and its cells listed, without starting
Ray. Launchers call it before they start a cluster (launch/slurm/): bad input is one line, in seconds."""

from __future__ import annotations

from commbench.options import Command

COMMAND = Command("check", "Validate a run's or a sweep's arguments and list its cells; starts nothing.",
                  run_options=True,
                  examples=("check model=squeezenet nodes=8 cluster=slurm cluster.address=10.0.0.1:6379",
                            "check -m model=alexnet,squeezenet nodes=1,2,4"))


def main(argv: list[str]) -> None:
    from commbench.overrides import checked_cells

    _, overrides = COMMAND.parse(argv)
    plans = checked_cells(overrides)
    for plan in plans:
        print(f"{plan.model} nodes={plan.nodes} compression={plan.compression} on {plan.where}: "
              f"config_hash {plan.config_hash()}")
    print(f"{len(plans)} cell(s) valid; results go to {plans[0].results_dir}" if plans else "nothing to run")
