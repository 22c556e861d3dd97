"""`commbench validate`: on one setup identity, the predicted timeline vs the trace replay vs the fully
trained run (step time and exposed comm, per model and N); and the alpha-beta ring (busbw fit) vs
comm-only replays. Only records measured on the same setup pair up.

`commbench validate published`: the predictor against published measurements of real GPU clusters
(results/published_scaling.yaml), every row with the same defaults."""

from __future__ import annotations

from commbench.commands.common import emit
from commbench.errors import fail
from commbench.options import FORMAT, RESULTS, Command

COMMAND = Command("validate", "Predicted (timeline) vs trace-replayed vs fully trained step time and exposed comm per "
                  "model and N, with the errors; and the busbw fit vs comm-only replays. Only pairs on one setup. "
                  "`validate published`: the same predictor against published GPU clusters (see its --help).",
                  (RESULTS, FORMAT),
                  examples=("validate", "validate results_dir=results format=json", "validate published"))
PUBLISHED = Command("validate published", "Predicted vs published scaling efficiency E(N) of real GPU clusters "
                    "(commbench/results/published_scaling.yaml, each row with its source), the same defaults for "
                    "every row; the difference per row, its mean and max.", (FORMAT,),
                    examples=("validate published", "validate published format=json"))


def main(argv: list[str]) -> None:
    if argv[:1] == ["published"]:
        return published(argv[1:])
    opts, _ = COMMAND.parse(argv)
    from commbench.results.store import records_of
    from commbench.results.validation import mismatch, timeline_rows, validation_rows
    from commbench.sinks.predictions import validate_tables
    runs, fits = records_of(opts["results_dir"], "run"), records_of(opts["results_dir"], "busbw")
    replays = records_of(opts["results_dir"], "replay")
    rows = ([{"comparison": "timeline", **r} for r in timeline_rows(runs, replays, fits)]
            + [{"comparison": "comm_only", **r} for r in validation_rows(fits, replays)])
    if not rows:
        fail(f"nothing to validate in {opts['results_dir']}: {mismatch(fits, replays)} "
             "(see launch/validate_timeline.sh)")
    emit(rows, opts["format"], lambda: validate_tables(rows))


def published(argv: list[str]) -> None:
    opts, _ = PUBLISHED.parse(argv)
    from commbench.comm.buckets import cached_layout
    from commbench.results.published import published_rows
    from commbench.sinks.predictions import published_table
    rows = published_rows(cached_layout)
    emit(rows, opts["format"], lambda: published_table(rows))
