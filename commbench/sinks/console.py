"""The terminal: a summary table per run and the model zoo listing (rich)."""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from commbench.sinks.link import goodput_notes, link_rows
from commbench.stats import largest_first

# Rich falls back to 80 columns when piped: a run's lines get 160, so that a log keeps each whole, and
# the analysis commands' answers ANSWER_COLUMNS, what their tables are laid out for, or COLUMNS.
console = Console(width=None if sys.stdout.isatty() else 160)
ANSWER_COLUMNS = 100
ANSWER_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or ANSWER_COLUMNS)
MB = 1e6


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def run_table(record: dict[str, Any], top_layers: int = 5) -> Table:
    nodes = record["nodes"]
    table = Table(title=f"commbench: {record['model']} on {nodes} worker(s)", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    sent_note = " (ring: 2(N-1)/N x payload)" if nodes > 1 else " (nodes=1: baseline, no collective)"
    rows = [
        ("model", f"{record['model']} {record['model_kwargs']}"),
        ("params", f"{record['params']:,}"),
        ("gradient payload / step", f"{fmt_bytes(record['grad_bytes_per_step'])} "
                                    f"({record['grad_bytes_per_step']:,} B, {record['collectives_per_step']} collectives)"),
        ("sent per rank / step", fmt_bytes(record["sent_bytes_per_step"]) + sent_note),
        ("buffer broadcast / step", fmt_bytes(record["buffer_bytes_per_step"])),
        ("step time median / p90", f"{fmt_ms(record['step_time_s'])} / {fmt_ms(record['step_time_p90_s'])}"),
        *split_rows(record),
        ("throughput", f"{record['throughput']:.1f} samples/s"),
        ("top layers by bytes", ", ".join(
            f"{layer} {share:.0%}" for layer, share in layer_shares(record, top_layers))),
        ("start-up", f"Ray {record['ray_init_s']:.1f} s, "
                     + (f"worker group {group_start_s(record):.1f} s (started for this run)"
                        if record.get("group_started", True) else "worker group already up")),
        *link_rows(record),
    ]
    for what, value in rows:
        table.add_row(what, value)
    return table


def split_rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The step split (medians; each timed step adds up exactly in per_step), and what hid behind it."""
    return [
        ("  compute (forward + backward)", f"{fmt_ms(record['compute_time_s'])} "
                                           f"({fmt_ms(record['forward_time_s'])} + {fmt_ms(record['backward_time_s'])})"),
        ("  codec", fmt_ms(record["codec_time_s"])),
        ("  exposed comm median / p90", f"{fmt_ms(record['exposed_comm_s'])} / {fmt_ms(record['exposed_comm_p90_s'])}"
                                        + (f" (buffer broadcast {fmt_ms(record['buffer_time_s'])})"
                                           if record.get("buffer_time_s") else "")),
        ("  optimizer", fmt_ms(record["optimizer_time_s"])),
        ("comm busy / hidden behind compute", f"{fmt_ms(record['comm_busy_s'])} / {fmt_ms(record['overlap_s'])}"),
        ("imbalance (max - min compute)", fmt_ms(record["imbalance_s"])),
    ]


def layer_shares(record: dict[str, Any], top: int) -> list[tuple[str, float]]:
    layers = largest_first(record.get("layer_bytes") or {})
    total = sum(layers.values()) or 1
    return [(layer, n / total) for layer, n in list(layers.items())[:top]]


def print_run(record: dict[str, Any], where: str) -> None:
    console.print(run_table(record))
    console.print(f"record appended to {where} (config_hash {record['config_hash']})")


def models_table(rows: Iterable[dict[str, Any]]) -> Table:
    """A model a row, its variant under its name; 1000 classes unless said (the rest: format=json)."""
    table = Table(title="commbench model zoo")
    for col, justify in (("model (variant)", "left"), ("params", "right"), ("fp32 MB/step", "right"),
                         ("min image", "right"), ("source", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "source")
    for row in rows:
        variant = " ".join(f"{k}={v}" for k, v in row["variant"].items())
        classes = "" if row["num_classes"] in (1000, None) else f" ({row['num_classes']} classes)"
        size = "-" if row["min_image_size"] is None else f"{row['min_image_size']} px"  # a library's: not measured
        table.add_row(row["model"] + classes + (f"\n  {variant}" if variant else ""), f"{row['params']:,}",
                      f"{row['grad_bytes_per_step'] / MB:.2f}", size, row["source"])
    return table


def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    table = Table(title=title)
    for name, justify in columns:
        table.add_column(name, justify=justify)
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _opt_ms(value: float | None) -> str:
    return "-" if value is None else fmt_ms(value)


def fmt_size(n: float, binary: bool) -> str:
    """Bytes in the units the sizes were asked in: 16 MiB stays 16 MiB, 16 MB stays 16 MB."""
    units = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)) if binary else (("GB", 1e9), ("MB", 1e6), ("kB", 1e3))
    for unit, scale in units:
        if abs(n) >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n:.0f} B"


def busbw_table(record: dict[str, Any]) -> Table:
    """Like nccl-tests: size, count, type, time (us), algbw and busbw (GB/s)."""
    binary = record.get("size_units", "binary") == "binary"
    ceiling = record.get("goodput_bytes_per_s")
    table = _table(f"all-reduce (sum), {record['nodes']} ranks: busbw = algbw x 2(N-1)/N",
                   [("size (B)", "right"), ("size", "right"), ("count", "right"), ("type", "left"),
                    ("iters", "right"), ("time (us)", "right"), ("algbw (GB/s)", "right"), ("busbw (GB/s)", "right"),
                    *([("of goodput", "right")] if ceiling else [])])
    for r in record["rows"]:
        table.add_row(f"{r['bytes']:,}", fmt_size(r["bytes"], binary), f"{r['bytes'] // 4:,}", "float",
                      str(r["iters"]), f"{r['time_s'] * 1e6:,.1f}", f"{r['algbw'] / 1e9:.3f}", f"{r['busbw'] / 1e9:.3f}",
                      *([f"{r['busbw'] / ceiling:.0%}"] if ceiling else []))
    notes = goodput_notes(record)
    fit = record.get("fit")
    if fit:
        notes.append(f"ring fit T(n) = 2(N-1) alpha + 2(N-1)/N n beta: alpha {fit['alpha_s'] * 1e6:.1f} us, "
                     f"1/beta {fit['bandwidth_bits_per_s'] / 8e9:.3f} GB/s, r2 {fit['r2']:.4f}, "
                     f"max error {fit['max_rel_error']:.1%}")
    iters = [r["iters"] for r in record["rows"]]
    if iters and min(iters) < max(iters):
        notes.append("sizes above 8 MiB ran fewer iterations (iters x 8 MiB / size, at least 3) so that the "
                     "largest messages do not dominate the sweep's time")
    table.caption = "\n".join(notes) or None
    return table


def scaling_answer(rows: list[dict[str, Any]]) -> str:
    """The one line that answers: E at the largest N measured with a baseline, per series, and what
    that N measured."""
    with_e = [r for r in rows if r["efficiency"] is not None and r["nodes"] > 1]
    if not with_e:
        return "no E(N) yet: every series needs its nodes=1 run (the same setup) as the baseline"
    n = max(r["nodes"] for r in with_e)
    at = sorted((r for r in with_e if r["nodes"] == n), key=lambda r: -r["efficiency"])
    return (f"measured E({n}): " + ", ".join(f"{r['series']} {r['efficiency']:.0%}" for r in at)
            + f" ({at[0]['regime']})")


def scaling_table(rows: list[dict[str, Any]]):
    from rich.console import Group

    from commbench.results.scaling import headline_rows

    _, where = headline_rows(rows)
    regimes = "; ".join(f"N={n}: {g}" for n, g in sorted({(r["nodes"], r["regime"]) for r in rows}))
    table = _table(f"{where}\n{regimes}", [
        ("series", "left"), ("N", "right"), ("samples/s", "right"), ("E(N)", "right"), ("step", "right"),
        ("compute", "right"), ("exposed comm", "right"), ("projected E", "right")])
    table.columns[0].no_wrap = True
    for r in rows:
        table.add_row(r["series"], str(r["nodes"]), f"{r['throughput']:.1f}", _pct(r["efficiency"]),
                      fmt_ms(r["step_time_s"]), fmt_ms(r["compute_time_s"]), fmt_ms(r["exposed_comm_s"]),
                      _pct(r["projected_efficiency"]))
    table.caption = ("medians over steps; E(N) = throughput(N) / (N x throughput(1)); projected E: t(1) / (t(1) + "
                     "replayed comm(N)); codec, optimizer, hidden comm, imbalance and replayed comm: format=json")
    return Group(scaling_answer(rows), table)


def layers_table(model: str, rows: list[dict[str, Any]], total: int, n_layers: int) -> Table:
    table = _table(f"{model}: gradient bytes per layer ({n_layers} layers, {fmt_bytes(total)} per step)",
                   [("layer", "left"), ("grad bytes", "right"), ("share", "right")])
    for r in rows:
        table.add_row(r["layer"], f"{r['grad_bytes']:,}", f"{r['share']:.1%}")
    return table


def compression_answer(rows: list[dict[str, Any]]) -> str:
    """The line that answers: which scheme sent fewest bytes, which stepped fastest."""
    fewest, fastest = max(rows, key=lambda r: r["ratio"]), min(rows, key=lambda r: r["step_time_s"])
    return (f"{rows[0]['model']} at N={rows[0]['nodes']}: fewest bytes {fewest['scheme']} ({fewest['ratio']:.1f}x fewer), "
            f"fastest step {fastest['scheme']} ({fmt_ms(fastest['step_time_s'])})")


def compression_table(rows: list[dict[str, Any]]):
    from rich.console import Group

    first = rows[0] if rows else {"model": "-", "nodes": "-", "steps": "-"}
    table = _table(f"compression: {first['model']} on {first['nodes']} workers, {first['steps']} timed steps",
                   [("scheme", "left"), ("payload / step", "right"), ("vs fp32", "right"), ("sent / rank", "right"),
                    ("codec", "right"), ("exposed comm", "right"), ("step", "right")])
    table.columns[0].no_wrap = True
    for r in rows:
        table.add_row(r["scheme"], fmt_bytes(r["grad_bytes_per_step"]), f"{r['ratio']:.1f}x",
                      fmt_bytes(r["sent_bytes_per_step"]), _opt_ms(r["codec_time_s"]), fmt_ms(r["exposed_comm_s"]),
                      fmt_ms(r["step_time_s"]))
    table.caption = ("payload: bytes handed to collectives (all-reduce, or all-gather for topk/int8); sent: per rank "
                     "in a ring at this N (an all-gather's grows with N-1); codec: encoding and exposed decoding; "
                     "sent vs fp32, collectives, buckets and the loss on each worker's batch: format=json")
    return Group(compression_answer(rows), table) if rows else table


def train_loop_s(record: dict[str, Any]) -> float:
    """The slowest worker's train loop: the run less what Ray cost around it."""
    return record["run_s"] - record["ray_overhead_s"]


def group_start_s(record: dict[str, Any]) -> float:
    """The worker group's start: the cell's time on its group less the slowest worker's train loop."""
    return record["fit_s"] - train_loop_s(record)
