"""`commbench busbw`: all-reduce bus bandwidth over message sizes, as nccl-tests measures it, and the
alpha-beta fit of the ring; appended to busbw.jsonl with the setup identity."""

from __future__ import annotations

from commbench.commands.common import COLLECTIVE_OPTIONS, collective_start, emit, on_ray
from commbench.errors import fail
from commbench.options import FORMAT, Command, Option
from commbench.units import parse_bytes

COMMAND = Command("busbw", "All-reduce time, algbw and busbw over message sizes (powers of 2), and the alpha-beta "
                  "fit of the ring, like nccl-tests.",
                  (Option("min_bytes", parse_bytes, 1024, "smallest message (1KiB, 4096)"),
                   Option("max_bytes", parse_bytes, 256 * 2**20, "largest message (64MiB)"),
                   *COLLECTIVE_OPTIONS, FORMAT),
                  run_options=True, examples=("busbw nodes=4", "busbw nodes=2 cluster=emulated network.bandwidth=100mbit"))


def size_units(argv: list[str]) -> str:
    """Print sizes as they were asked: decimal where a size was given in kB/MB/GB, else binary (KiB...)."""
    asked = [a.partition("=")[2].lower() for a in argv if a.startswith(("min_bytes=", "max_bytes="))]
    return "decimal" if any(a.rstrip("b").endswith(("k", "m", "g")) for a in asked) else "binary"


def main(argv: list[str]) -> None:
    from commbench.comm.busbw import busbw_loop, message_sizes
    from commbench.netmodel import busbw, fit_alpha_beta
    from commbench.results.store import append_record, collective_record, path_of
    from commbench.sinks.console import busbw_table

    started = collective_start(COMMAND, argv)
    if started is None:
        return
    opts, plan = started
    try:
        sizes = message_sizes(opts["min_bytes"], opts["max_bytes"])
    except ValueError as exc:
        fail(str(exc))
    config = {**plan.worker_config(), "sizes": sizes, "iters": opts["iters"], "warmup_iters": opts["warmup_iters"]}
    goodput = None
    if plan.cluster_kind == "emulated":  # the link's single-stream TCP ceiling, measured in the same run
        from commbench.comm.goodput import busbw_with_goodput

        out = on_ray(plan, busbw_with_goodput, config)
        rows, goodput = out["rows"], out["goodput"]
    else:
        rows = on_ray(plan, busbw_loop, config)
    for row in rows:
        row["algbw"], row["busbw"] = busbw(row["bytes"], row["time_s"], plan.nodes)
    fit = fit_alpha_beta([r["bytes"] for r in rows], [r["time_s"] for r in rows], plan.nodes) if len(rows) > 1 else None
    record = {**collective_record(plan, "busbw"), "rows": rows, "fit": fit, "size_units": size_units(argv)}
    if goodput is not None:
        record["goodput"] = goodput  # {bytes, seconds, bytes_per_s} of one stream rank 0 -> 1, or {error}
        record["goodput_bytes_per_s"] = goodput.get("bytes_per_s")
    append_record(path_of(plan.results_dir, "busbw"), record)
    emit(record, opts["format"], lambda: busbw_table(record))
