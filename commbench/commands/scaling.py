"""`commbench scaling`: E(N) per model from the runs in a results folder, each series one setup."""

from __future__ import annotations

from commbench.commands.common import emit
from commbench.errors import fail
from commbench.options import FORMAT, RESULTS, Command

COMMAND = Command("scaling", "Scaling efficiency E(N) per model and setup, with the step split and the efficiency "
                  "projected from comm-only replays.", (RESULTS, FORMAT), examples=("scaling", "scaling format=json"))


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.results.scaling import scaling_rows
    from commbench.results.store import path_of, records_of
    from commbench.sinks.console import scaling_table
    rows = scaling_rows(records_of(opts["results_dir"], "run"), records_of(opts["results_dir"], "replay"))
    if not rows:
        fail(f"no successful runs in {path_of(opts['results_dir'], 'run')}")
    emit(rows, opts["format"], lambda: scaling_table(rows))
