"""`compare`'s answer: one line, a table and two charts of E(N) and exposed comm against N per model."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from rich.console import Group

from commbench.sinks.charts import legend, plain_log, plt, save, spread
from commbench.sinks.console import _pct, _table, fmt_bytes, fmt_ms
from commbench.sinks.link import fmt_rate

BOUND = 0.5  # below this E(N) a step waits longer than it computes
CURVE_END = 1024


def network(inputs: dict[str, Any]) -> str:
    """'10 Gbit/s, 5 us'."""
    return f"{fmt_rate(inputs['bandwidth_bits_per_s'])}, {inputs['latency_s'] * 1e6:g} us"


def compute_words(inputs: dict[str, Any]) -> str:
    if inputs["compute"] == "flops":
        return (f"compute: each model's FLOPs at {inputs['device_flops'] / 1e12:.1f} TFLOP/s (a V100 in PyTorch's "
                f"DDP benchmark), batch {inputs['batch_size']} per GPU")
    return "compute: this machine's nodes=1 traces (measured)"


def caveat(inputs: dict[str, Any]) -> str:
    """What the compute assumption does to the picture."""
    if inputs["compute"] == "flops":
        return ("Depthwise and grouped convolutions (MobileNet, ShuffleNet) run well below that rate on a GPU: their "
                "steps are longer than drawn, so they scale better than drawn. DDP's own cost and the overheads of "
                "real clusters are priced (commbench/overheads.py), so E(1) is below 100%.")
    return ("DDP's own cost is in the traces (E(1) = 100%)" + ("; the overheads of real GPU clusters are priced "
            "(commbench/overheads.py)." if inputs["backend"] == "nccl" else "; gloo on CPU adds no priced overhead."))


def regime(row: dict[str, Any]) -> str:
    """'E below 50% from N=16' or 'E >= 50% through N=1024': where a step starts waiting longer than it
    computes (the network, and the terms real clusters add)."""
    curve = {n: e for n, e in row["efficiency"].items() if n <= CURVE_END}
    below = [n for n, e in sorted(curve.items()) if e < BOUND]
    return f"E below 50% from N={below[0]}" if below else f"E ≥ 50% through N={max(curve)}"


def answer(rows: list[dict[str, Any]], inputs: dict[str, Any], nodes: int) -> str:
    """'at N=64 on 10 Gbit/s, 5 us: squeezenet 97% efficient, alexnet 41%': AlexNet and SqueezeNet where
    both are drawn, else the best and the worst."""
    by_model = {r["model"]: r for r in rows}
    ranked = sorted(rows, key=lambda r: -r["efficiency"][nodes])
    pair = ([by_model["squeezenet"], by_model["alexnet"]] if {"squeezenet", "alexnet"} <= set(by_model)
            else ranked[:1] + ranked[-1:] if len(ranked) > 1 else ranked)
    said = [f"{r['model']} {r['efficiency'][nodes]:.0%}" for r in pair]
    return f"at N={nodes} on {network(inputs)}: {said[0]} efficient" + "".join(f", {s}" for s in said[1:])


def comparison_table(result: dict[str, Any], nodes: int) -> Group:
    inputs = result["inputs"]
    table = _table(f"predicted at N={nodes} on {network(inputs)}", [
        ("model", "left"), ("payload", "right"), ("compute", "right"), (f"E({nodes})", "right"),
        (f"exposed comm ({nodes})", "right"), ("regime", "left")])
    for r in sorted(result["models"], key=lambda r: -r["efficiency"][nodes]):
        table.add_row(r["model"], fmt_bytes(r["payload_bytes"]), fmt_ms(r["compute_s"]), _pct(r["efficiency"][nodes]),
                      fmt_ms(r["exposed_comm_s"][nodes]), regime(r))
    notes = [compute_words(inputs) + f"; DDP, interference and stragglers: {inputs['backend']} defaults"]
    if inputs["left_out"]:
        notes.append(f"left out: {', '.join(inputs['left_out'])}")
    notes.append((f"{len(result['measured'])} measured point(s)" if inputs["compute"] == "trace" else
                  "measured points: with compute=trace (this machine's compute)") + "; charts: " + ", ".join(result["charts"]))
    table.caption = "\n".join(notes)
    return Group(result["answer"], table)


def _curve_axes(ax, inputs: dict[str, Any], ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ticks = [1, 4, 16, 64, 256, 1024]
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.minorticks_off()
    ax.set_xlabel("data-parallel ranks N")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def _end_labels(ax, rows: list[dict[str, Any]], ys: list[float], colors: list[str], gap: float, text,
                log: bool = False) -> None:
    """Each line's label at its right end, spread so that no two overlap: `gap` apart in the axis's own
    units (decades where `log`)."""
    at = [math.log10(y) for y in ys] if log else ys
    for row, y, label_y, color in zip(rows, ys, spread(at, gap), colors):
        ax.annotate(text(row), (CURVE_END, y), xytext=(CURVE_END * 1.25, 10 ** label_y if log else label_y), fontsize=8,
                    color=color, va="center", arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5})


def plot_efficiency(rows: list[dict[str, Any]], points: list[dict[str, Any]], inputs: dict[str, Any],
                    path: Path) -> Path:
    """E(N) per model, N = 1 .. 1024 (log), a labelled line each with its regime; measured points on top."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors = {}
    for r in rows:
        ns = [n for n in sorted(r["efficiency"]) if n <= CURVE_END]
        line, = ax.plot(ns, [100 * r["efficiency"][n] for n in ns], linewidth=1.6)
        colors[r["model"]] = line.get_color()
    for how, marker in (("trained run", "o"), ("trace replay", "^")):
        mine = [p for p in points if p["how"] == how]
        for p in mine:
            ax.scatter(p["nodes"], 100 * p["efficiency"], marker=marker, color=colors[p["model"]], zorder=3, s=28)
        if mine:
            ax.scatter([], [], marker=marker, color="0.4", label=f"measured here: {how} ({len(mine)})")
    ax.axhline(100 * BOUND, color="0.6", linewidth=0.8, linestyle=":",
               label="E = 50%: below it a step waits longer than it computes")
    _end_labels(ax, rows, [100 * r["efficiency"][CURVE_END] for r in rows], [colors[r["model"]] for r in rows], 4.5,
                lambda r: f"{r['model']}: {regime(r)}")
    _curve_axes(ax, inputs, "scaling efficiency E(N)")
    ax.set_xlim(1, 1024 * 1.2)
    ax.set_ylim(0, 105)
    _titles(fig, f"Predicted scaling efficiency on {network(inputs)} links"
            + (f", {inputs['gpus_per_node']} GPUs per node" if inputs["gpus_per_node"] > 1 else ""), inputs)
    legend(ax)
    return save(fig, path)


def _titles(fig, title: str, inputs: dict[str, Any]) -> None:
    """Title and inputs above, the compute caveat below; laid out by hand (save() then keeps it)."""
    fig.suptitle(f"{title}\n{compute_words(inputs)}", fontsize=10)
    fig.text(0.02, 0.01, textwrap.fill(caveat(inputs), 150), fontsize=7.5, color="0.35", va="bottom")
    fig.subplots_adjust(left=0.08, right=0.68, top=0.88, bottom=0.17)


def plot_comm(rows: list[dict[str, Any]], inputs: dict[str, Any], path: Path) -> Path:
    """Exposed comm per step (ms, log) against N: what each model's step waits on the network."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors, ends = [], []
    for r in rows:
        ns = [n for n in sorted(r["exposed_comm_s"]) if r["exposed_comm_s"][n] > 0 and n <= CURVE_END]  # N=1: none
        line, = ax.plot(ns, [1e3 * r["exposed_comm_s"][n] for n in ns], linewidth=1.6)
        colors.append(line.get_color())
        ends.append(1e3 * r["exposed_comm_s"][CURVE_END])
    ax.set_yscale("log")
    plain_log(ax.yaxis)
    lo, hi = ax.get_ylim()
    _end_labels(ax, rows, ends, colors, 0.045 * (math.log10(hi) - math.log10(lo)),
                lambda r: f"{r['model']} ({fmt_bytes(r['payload_bytes'])}/step)", log=True)
    _curve_axes(ax, inputs, "exposed communication per step (ms)")
    ax.set_xlim(1, 1024 * 1.2)
    _titles(fig, f"Predicted exposed communication per step on {network(inputs)} links"
            + (f", {inputs['gpus_per_node']} GPUs per node" if inputs["gpus_per_node"] > 1 else ""), inputs)
    return save(fig, path)
