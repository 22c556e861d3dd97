"""`commbench compare-compression`: every compression scheme on one model and N, trained the same way;
each scheme a recorded run (resume skips it when recorded)."""

from __future__ import annotations

from commbench.comm.schemes import SCHEMES
from commbench.commands.common import emit
from commbench.options import FORMAT, Command, Option


def scheme_list(text: str) -> list[str]:
    names = [s for s in text.split(",") if s]
    unknown = [s for s in names if s not in SCHEMES]
    if unknown or not names:
        raise ValueError(f"must be a comma-separated list of {', '.join(SCHEMES)}, got {text!r}")
    return names


COMMAND = Command("compare-compression", "Run every gradient compression scheme on one model and N: bytes per step, "
                  "comm and step time, and the loss each reaches.",
                  (Option("schemes", scheme_list, list(SCHEMES), "comma-separated schemes"), FORMAT),
                  run_options=True, examples=("compare-compression model=alexnet nodes=4",
                                              "compare-compression model=squeezenet nodes=2 schemes=none,topk"))


def main(argv: list[str]) -> None:
    opts, overrides = COMMAND.parse(argv)
    from commbench.commands.run import run_cell, wandb_settings
    from commbench.config import compose
    from commbench.overrides import plan_from
    from commbench.results.compression import CONVERGENCE, compression_rows
    from commbench.results.store import records_of
    from commbench.sinks.console import compression_table
    from commbench.errors import fail
    from commbench.pool import POOL
    from commbench.sweep import SWEEP, close_sweep

    cells = [[*CONVERGENCE, *overrides, f"compression={s}"] for s in opts["schemes"]]
    plans = [plan_from(cell) for cell in cells]  # every cell is valid before Ray starts
    group = f"compare-{plans[0].model}-n{plans[0].nodes}"
    try:  # every scheme's cell runs on one worker group (same N)
        for k, cell in enumerate(cells, start=1):
            run_cell(compose(cell), cell, cell=(k, len(cells)), group=group)
    finally:
        POOL.close()
    hashes = {p.config_hash() for p in plans}
    rows = compression_rows(r for r in records_of(plans[0].results_dir, "run") if r.get("config_hash") in hashes)
    emit(rows, opts["format"], lambda: compression_table(rows))
    close_sweep(plans[0].results_dir, wandb_settings(compose(cells[0]), plans[0].results_dir, group),
                new_results=SWEEP.ran > 0)
    if SWEEP.failed:
        fail(f"{SWEEP.failed} of {len(cells)} schemes failed (recorded as failed; the same command reruns them)")
