"""The terminal: a summary table per run and the model zoo listing (rich)."""

from __future__ import annotations

import sys
from typing import Any, Iterable

from rich.console import Console, Group
from rich.table import Table

from commbench.stats import largest_first

# Rich falls back to 80 columns when piped; tables of 6-7 columns read better wider.
console = Console(width=None if sys.stdout.isatty() else 160)
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
    layers = largest_first(record.get("layer_bytes") or {})
    total = sum(layers.values()) or 1
    return [(layer, n / total) for layer, n in list(layers.items())[:top]]


def print_run(record: dict[str, Any], where: str) -> None:
    console.print(run_table(record))
    console.print(f"record appended to {where} (config_hash {record['config_hash']})")


def models_table(rows: Iterable[dict[str, Any]]) -> Table:
    table = Table(title="commbench model zoo")
    for col, justify in (("model", "left"), ("params", "right"), ("fp32 grad MB/step", "right"),
                         ("classes", "right"), ("min image", "right"), ("variant", "left"), ("source", "left")):
        table.add_column(col, justify=justify, no_wrap=col in ("model", "variant"))
    for row in rows:
        variant = " ".join(f"{k}={v}" for k, v in row["variant"].items())
        table.add_row(row["model"], f"{row['params']:,}", f"{row['grad_bytes_per_step'] / MB:.2f}",
                      str(row["num_classes"]), f"{row['min_image_size']} px", variant, row["source"])
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


def busbw_table(record: dict[str, Any]) -> Table:
    table = _table(f"all-reduce bus bandwidth, {record['nodes']} ranks (busbw = algbw x 2(N-1)/N)",
                   [("size", "right"), ("iters", "right"), ("time", "right"), ("algbw", "right"), ("busbw", "right")])
    for r in record["rows"]:
        table.add_row(fmt_bytes(r["bytes"]), str(r["iters"]), f"{r['time_s'] * 1e6:,.1f} us",
                      f"{fmt_bytes(r['algbw'])}/s", f"{fmt_bytes(r['busbw'])}/s")
    fit = record.get("fit")
    if fit:
        table.caption = (f"ring fit T(n) = 2(N-1) alpha + 2(N-1)/N n beta: alpha {fit['alpha_s'] * 1e6:.1f} us, "
                         f"1/beta {fit['bandwidth_bits_per_s'] / 1e9:.2f} Gbit/s, r2 {fit['r2']:.4f}, "
                         f"max error {fit['max_rel_error']:.1%}")
    return table


def replay_table(record: dict[str, Any]) -> Table:
    table = _table(f"comm-only replay: {record['model']} on {record['nodes']} ranks", [("what", "left"), ("value", "left")])
    table.add_row("buckets (DDP order)", ", ".join(fmt_bytes(b) for b in record["bucket_bytes"]))
    table.add_row("payload / step", f"{fmt_bytes(record['payload_bytes'])} ({record['payload_bytes']:,} B, checked)")
    table.add_row("comm time median / p90", f"{fmt_ms(record['comm_time_s'])} / {fmt_ms(record['comm_time_p90_s'])}")
    table.add_row("compute time at N=1", _opt_ms(record["compute_time_1_s"]))
    table.add_row("projected efficiency", _pct(record["projected_efficiency"]))
    return table


def scaling_table(rows: list[dict[str, Any]]) -> Table:
    table = _table("scaling: E(N) = throughput(N) / (N x throughput(1)); step = compute + exposed comm", [
        ("model", "left"), ("N", "right"), ("samples/s", "right"), ("E(N)", "right"), ("step", "right"),
        ("compute", "right"), ("exposed comm", "right"), ("overlap", "right"), ("replay comm", "right"),
        ("projected E", "right"), ("measured with", "left")])
    table.columns[0].no_wrap = True
    for r in rows:
        table.add_row(r["model"], str(r["nodes"]), f"{r['throughput']:.1f}", _pct(r["efficiency"]),
                      fmt_ms(r["step_time_s"]), fmt_ms(r["compute_time_s"]), fmt_ms(r["exposed_comm_s"]),
                      fmt_ms(r["overlap_s"]), _opt_ms(r["replay_comm_s"]), _pct(r["projected_efficiency"]),
                      r["regime"])
    table.caption = ("overlap: collective time hidden behind backward; projected E: compute(1) / (compute(1) + "
                     "replayed comm(N)), the efficiency without training's CPU contention")
    return table


def layers_table(model: str, rows: list[dict[str, Any]], total: int, n_layers: int) -> Table:
    table = _table(f"{model}: gradient bytes per layer ({n_layers} layers, {fmt_bytes(total)} per step)",
                   [("layer", "left"), ("grad bytes", "right"), ("share", "right")])
    for r in rows:
        table.add_row(r["layer"], f"{r['grad_bytes']:,}", f"{r['share']:.1%}")
    return table


def predict_tables(out: dict[str, Any]) -> Group:
    net = out["network"]
    head = (f"{out['model']}: {fmt_bytes(sum(out['buckets']))} in {len(out['buckets'])} bucket(s) ({out['bucket_source']}); "
            f"network alpha {net['alpha_s'] * 1e6:.2f} us, {net['bandwidth_bits_per_s'] / 1e9:.3g} Gbit/s ({net['source']}); "
            f"compute {_opt_ms(out['compute_s'])} per step" + ("" if out["compute_s"] is not None else
                                                               " (unknown: run nodes=1 or give compute_s=)"))
    algorithms = list(out["at_nodes"])
    at = _table(f"predicted at N={out['nodes']}", [("algorithm", "left"), ("comm / step", "right"),
                                                    ("step", "right"), ("efficiency", "right")])
    for alg, p in out["at_nodes"].items():
        at.add_row(alg, fmt_ms(p["comm_s"]), _opt_ms(p["step_s"]), _pct(p["efficiency"]))
    by_n = _table("comm time per step (efficiency) by N", [("N", "right")] + [(a, "right") for a in algorithms])
    for row in out["by_nodes"]:
        by_n.add_row(str(row["nodes"]), *(f"{fmt_ms(row[a]['comm_s'])} ({_pct(row[a]['efficiency'])})" for a in algorithms))
    rank = _table(f"which model scales best here? ring all-reduce at N={out['nodes']}",
                  [("#", "right"), ("model", "left"), ("payload", "right"), ("buckets", "right"),
                   ("comm / step", "right"), ("compute / step", "right"), ("efficiency", "right")])
    for i, r in enumerate(out["ranking"], start=1):
        rank.add_row(str(i), r["model"], fmt_bytes(r["payload_bytes"]), str(r["buckets"]), fmt_ms(r["comm_s"]),
                     _opt_ms(r["compute_s"]), _pct(r["efficiency"]))
    return Group(head, at, by_n, rank)


def validate_table(rows: list[dict[str, Any]]) -> Table:
    table = _table("alpha-beta (busbw fit) vs measured comm-only replay, ring all-reduce",
                   [("model", "left"), ("N", "right"), ("payload", "right"), ("measured", "right"),
                    ("predicted", "right"), ("error", "right")])
    for r in rows:
        table.add_row(r["model"], str(r["nodes"]), fmt_bytes(r["payload_bytes"]), fmt_ms(r["measured_s"]),
                      fmt_ms(r["predicted_s"]), f"{r['error']:+.1%}")
    errors = [abs(r["error"]) for r in rows]
    table.caption = f"mean |error| {sum(errors) / len(errors):.1%}, max |error| {max(errors):.1%}"
    return table


def compression_table(rows: list[dict[str, Any]]) -> Table:
    first = rows[0] if rows else {"model": "-", "nodes": "-", "steps": "-"}
    table = _table(f"compression: {first['model']} on {first['nodes']} workers, {first['steps']} timed steps",
                   [("scheme", "left"), ("payload / step", "right"), ("vs fp32", "right"), ("sent / rank", "right"),
                    ("collectives", "right"), ("comm (exposed)", "right"), ("comm span", "right"),
                    ("step", "right"), ("loss first -> last", "right")])
    table.columns[0].no_wrap = True
    for r in rows:
        table.add_row(r["scheme"], fmt_bytes(r["grad_bytes_per_step"]), f"{r['ratio']:.1f}x",
                      fmt_bytes(r["sent_bytes_per_step"]), str(r["collectives_per_step"]), fmt_ms(r["comm_time_s"]),
                      _opt_ms(r["comm_span_s"]), fmt_ms(r["step_time_s"]),
                      f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}")
    table.caption = ("payload: bytes handed to collectives (all-reduce, or all-gather for topk/int8); sent: per rank "
                     "in a ring; comm span: first collective issued to last done; loss on each worker's fixed batch")
    return table
