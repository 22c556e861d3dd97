"""`commbench validate`: alpha-beta predictions (busbw fits) against measured comm-only replays, each
pair measured over the same network (results.setup.NETWORK)."""

from __future__ import annotations

from commbench.commands.common import emit
from commbench.errors import fail
from commbench.options import FORMAT, RESULTS, Command

COMMAND = Command("validate", "Predicted (ring alpha-beta, busbw fit) vs measured (replay) comm time per model and N, "
                  "with the error; only pairs measured on the same setup.", (RESULTS, FORMAT),
                  examples=("validate", "validate results_dir=results format=json"))


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.results.store import records_of
    from commbench.results.validation import mismatch, validation_rows
    from commbench.sinks.console import validate_table
    fits, replays = records_of(opts["results_dir"], "busbw"), records_of(opts["results_dir"], "replay")
    rows = validation_rows(fits, replays)
    if not rows:
        fail(f"nothing to validate in {opts['results_dir']}: {mismatch(fits, replays)} "
             "(see launch/validate_alpha_beta.sh)")
    emit(rows, opts["format"], lambda: validate_table(rows))
