"""`commbench export`: every record of a results folder (runs, busbw, replays) as one table in CSV,
Parquet or JSON lines, for analysis elsewhere (commbench.results.load is the same table in Python)."""

from __future__ import annotations

from commbench.errors import fail
from commbench.options import RESULTS, Command, Option, choice

COMMAND = Command("export", "Every record of a results folder as one table: csv, parquet or json (one row per record).",
                  (RESULTS, Option("format", choice("csv", "parquet", "json"), "csv", "the file format"),
                   Option("out", str, None, "the file to write (default: results_dir/export/results.FORMAT)")),
                  examples=("export format=parquet", "export results_dir=results format=csv out=runs.csv"))


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench import results
    if not results.records(opts["results_dir"], ok_only=False):
        fail(f"no records in {opts['results_dir']}: nothing to export")
    path, rows = results.export(opts["results_dir"], opts["format"], opts["out"])
    print(f"{rows} records -> {path}")
