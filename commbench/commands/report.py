"""`commbench report`: PNG charts and summary.md of a results folder, in ${results_dir}/report/."""

from __future__ import annotations

from commbench.errors import fail
from commbench.options import RESULTS, Command, Option

COMMAND = Command("report", "Charts (PNG) and summary.md of a results folder, written to results_dir/report/, "
                  "with the predictor against published measurements (published_validation.png), compare's "
                  "headline charts at its defaults, and the step of the run at the largest N as a Gantt chart and "
                  "a Chrome trace.",
                  (RESULTS, Option("model", str, None, "the model of the per-layer chart (default: most bytes)")),
                  examples=("report", "report results_dir=results model=alexnet"))


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.comm.buckets import cached_layout
    from commbench.commands import compare
    from commbench.commands.common import results_file
    from commbench.results.published import published_rows
    from commbench.sinks.report import load_results, write_report
    folder = results_file(opts["results_dir"], "")
    try:
        results = load_results(folder)  # a folder without runs says so before the published rows are laid out
        paths = write_report(folder, opts["model"], results, published_rows(cached_layout))
    except ValueError as exc:
        fail(str(exc))
    headline = compare.draw({**{o.name: o.default for o in compare.COMMAND.options}, "results_dir": opts["results_dir"]})
    for path in [*paths, *headline["charts"]]:
        print(path)
    print(headline["answer"] + " (compare's defaults: python -m commbench compare --help)")
