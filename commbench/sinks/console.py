"""The terminal: a summary table per run and the model zoo listing (rich)."""

from __future__ import annotations

import sys
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

# Rich falls back to 80 columns when piped; tables of 6-7 columns read better wider.
console = Console(width=None if sys.stdout.isatty() else 140)
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
        ("compute time median", fmt_ms(record["compute_time_s"])),
        ("blocked on comm median / p90", f"{fmt_ms(record['comm_time_s'])} / {fmt_ms(record['comm_time_p90_s'])}"),
        ("throughput", f"{record['throughput']:.1f} samples/s"),
        ("top layers by bytes", ", ".join(
            f"{layer} {share:.0%}" for layer, share in layer_shares(record, top_layers))),
        ("start-up", f"Ray {record['ray_init_s']:.1f} s, trainer {record['fit_s']:.1f} s in all"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    return table


def layer_shares(record: dict[str, Any], top: int) -> list[tuple[str, float]]:
    layers = record.get("layer_bytes") or {}
    total = sum(layers.values()) or 1
    return [(layer, n / total) for layer, n in list(layers.items())[:top]]


def print_run(record: dict[str, Any], where: str) -> None:
    console.print(run_table(record))
    console.print(f"record appended to {where} (config_hash {record['config_hash']})")


def models_table(rows: Iterable[dict[str, Any]]) -> Table:
    table = Table(title="commbench model zoo")
    for col, justify in (("model", "left"), ("params", "right"), ("fp32 grad MB/step", "right"),
                         ("min image", "right"), ("variant", "left"), ("source", "left")):
        table.add_column(col, justify=justify)
    for row in rows:
        table.add_row(row["model"], f"{row['params']:,}", f"{row['grad_bytes_per_step'] / MB:.2f}",
                      f"{row['min_image_size']} px", str(row["variant"] or ""), row["source"])
    return table
