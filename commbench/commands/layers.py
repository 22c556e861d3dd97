"""`commbench layers`: a model's layers by gradient bytes (its newest run), with their share."""

from __future__ import annotations

from commbench.commands.common import emit
from commbench.errors import fail
from commbench.overrides import default_option
from commbench.options import FORMAT, RESULTS, Command, Option, positive_int

COMMAND = Command("layers", "The layers of a model's newest run by gradient bytes, with their share of the payload.",
                  (Option("model", str, default_option("model"), "the model: a zoo name or <source>/<name>"), RESULTS,
                   Option("top", positive_int, 20, "how many layers"), FORMAT),
                  examples=("layers model=alexnet top=5",))


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.models.sources import run_options
    from commbench.results.store import path_of, records_of
    from commbench.sinks.console import layers_table
    from commbench.stats import largest_first
    runs = [r for r in records_of(opts["results_dir"], "run") if r.get("model") == opts["model"] and r.get("layer_bytes")]
    if not runs:
        fail(f"no run of model {opts['model']!r} in {path_of(opts['results_dir'], 'run')}: "
             f"run `python -m commbench {' '.join(run_options(opts['model']))}` first")
    layers = largest_first(runs[-1]["layer_bytes"])
    total = sum(layers.values())
    rows = [{"layer": k, "grad_bytes": v, "share": v / total} for k, v in list(layers.items())[:opts["top"]]]
    emit(rows, opts["format"], lambda: layers_table(opts["model"], rows, total, len(layers)))
