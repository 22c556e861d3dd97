"""`commbench validate`: on one setup identity, the predicted timeline vs the trace replay vs the fully
trained run (step time and exposed comm, per model and N); and the alpha-beta ring (busbw fit) vs
comm-only replays. Only records measured on the same setup pair up."""

from __future__ import annotations

from typing import Any

from commbench.commands.common import emit
from commbench.errors import fail
from commbench.options import FORMAT, RESULTS, Command

COMMAND = Command("validate", "Predicted (timeline) vs trace-replayed vs fully trained step time and exposed comm per "
                  "model and N, with the errors; and the busbw fit vs comm-only replays. Only pairs on one setup.",
                  (RESULTS, FORMAT),
                  examples=("validate", "validate results_dir=results format=json"))


def link_network(replay: dict[str, Any]):
    """No busbw fit: the emulated link's rate less what TCP/IP framing and ACKs take of it, no latency
    term beyond the link's own; loopback has no link to price."""
    from commbench.comm.wire import link_overhead
    from commbench.netmodel import Network

    bandwidth = replay.get("bandwidth_bits_per_s")
    if not bandwidth:
        return None
    overhead = link_overhead(1500)  # payload share of link time: headers, ACKs and the 24 B htb counts per frame
    return Network(replay.get("latency_s") or 0.0, 8 * overhead / bandwidth), "link rate less headers and ACKs"


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.results.store import records_of
    from commbench.results.validation import mismatch, timeline_rows, validation_rows
    from commbench.sinks.predictions import validate_tables
    runs, fits = records_of(opts["results_dir"], "run"), records_of(opts["results_dir"], "busbw")
    replays = records_of(opts["results_dir"], "replay")
    rows = ([{"comparison": "timeline", **r} for r in timeline_rows(runs, replays, fits, link_network)]
            + [{"comparison": "comm_only", **r} for r in validation_rows(fits, replays)])
    if not rows:
        fail(f"nothing to validate in {opts['results_dir']}: {mismatch(fits, replays)} "
             "(see launch/validate_timeline.sh)")
    emit(rows, opts["format"], lambda: validate_tables(rows))
