"""The report's charts (matplotlib, Agg): bytes vs params, E(N), exposed comm, layers, compression."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter  # noqa: E402

from commbench.results.scaling import headline_rows  # noqa: E402
from commbench.stats import largest_first  # noqa: E402

TOP_LAYERS = 15
DPI = 120


def series(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """scaling_rows grouped into series (rows come per series, nodes ascending), each labelled by its
    model and what sets it apart (scheme, link, threads, batch); a label still shared gets a number."""
    groups: list[list[dict[str, Any]]] = []
    for row in rows:
        if groups and groups[-1][-1]["series_key"] == row["series_key"] and groups[-1][-1]["nodes"] < row["nodes"]:
            groups[-1].append(row)
        else:
            groups.append([row])
    seen: dict[str, int] = {}
    out = []
    for group in groups:
        label = group[0]["series"]
        seen[label] = seen.get(label, 0) + 1
        out.append((label if seen[label] == 1 else f"{label} ({seen[label]})", group))
    return out


def plain_log(axis) -> None:
    """A log axis with plain labels at 1, 2, 5 x 10^k (matplotlib's default mixes 2x10^2, 100, 6x10^1)."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:  # nothing drawn (no nodes=1 baseline): no empty legend box
        ax.legend()


def save(fig, path: Path) -> Path:
    if not fig.texts:  # a figure with a footnote has laid itself out
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def spread(values: list[float], gap: float) -> list[float]:
    """Label positions near `values` with at least `gap` between neighbours (in the values' order),
    shifted as a block so that on average they stay where the points are."""
    order = sorted(range(len(values)), key=values.__getitem__)
    pos = [values[i] for i in order]
    for k in range(1, len(pos)):
        pos[k] = max(pos[k], pos[k - 1] + gap)
    shift = (sum(pos) - sum(values)) / len(pos)
    out = [0.0] * len(values)
    for k, i in enumerate(order):
        out[i] = pos[k] - shift
    return out


def claim_pair(newest: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """AlexNet against SqueezeNet (the paper's claim) where both ran, else the largest and smallest."""
    if "alexnet" in newest and "squeezenet" in newest:
        return newest["alexnet"], newest["squeezenet"]
    by_bytes = sorted(newest.values(), key=lambda r: r["grad_bytes_per_step"])
    return by_bytes[-1], by_bytes[0]


def plot_bytes_vs_params(newest: dict[str, dict[str, Any]], path: Path) -> Path:
    """Log-log scatter, a labelled point per model. The points lie on one line (fp32: 4 bytes per
    parameter), so labels sit in a column to their right, spread apart, with leader lines."""
    models = sorted(newest, key=lambda m: newest[m]["grad_bytes_per_step"])
    xs = [newest[m]["params"] for m in models]
    ys = [newest[m]["grad_bytes_per_step"] for m in models]
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.scatter(xs, ys, s=30, zorder=3, color="tab:blue")
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo, hi = math.log10(min(ys)) - 0.4, math.log10(max(ys)) + 0.4
    gap = 0.036 * (hi - lo)  # one text line of 9 pt on this figure's axes
    label_y = spread([math.log10(y) for y in ys], gap)
    ax.set_ylim(10 ** min(lo, min(label_y) - gap), 10 ** max(hi, max(label_y) + gap))
    ax.set_xlim(min(xs) / 3, max(xs) * 15)
    schemes = {m: newest[m].get("compression") or "none" for m in models}
    for model, x, y, ly in zip(models, xs, ys, label_y):
        scheme = "" if schemes[model] == "none" else f", compression={schemes[model]}"
        ax.annotate(f"{model} ({y / 1e6:.1f} MB{scheme})", (x, y), xytext=(x * 3, 10 ** ly), fontsize=9,
                    va="center", arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6})
    ax.set_xlabel("parameters")
    all_fp32 = set(schemes.values()) == {"none"}
    ax.set_ylabel("gradient bytes per step (" + ("fp32 payload)" if all_fp32 else "payload; fp32 unless marked)"))
    big, small = claim_pair(newest)
    title = "Gradient bytes per step vs model size"
    if big is not small:
        ratio = big["grad_bytes_per_step"] / small["grad_bytes_per_step"]
        title += f"\n{big['model']} sends {ratio:.0f}x the bytes of {small['model']}"
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    return save(fig, path)


def measured_nodes(rows: list[dict[str, Any]]) -> list[int]:
    return sorted({r["nodes"] for r in rows})


def plot_efficiency(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """E(N) per series; None (nothing written) when no series has a nodes=1 baseline."""
    rows, title = headline_rows(rows)
    drawn = [(label, [(r["nodes"], 100 * r["efficiency"]) for r in group if r["efficiency"] is not None])
             for label, group in series(rows)]
    drawn = [(label, pts) for label, pts in drawn if pts]
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, pts in drawn:
        ax.plot(*zip(*pts), marker="o", label=label)
    nodes = sorted({n for _, pts in drawn for n, _ in pts})
    ax.set_xscale("log", base=2)
    ax.set_xticks(nodes, [str(n) for n in nodes])
    ax.minorticks_off()
    ax.set_ylim(0, 105)
    ax.yaxis.set_major_formatter(PercentFormatter())
    ax.set_xlabel("nodes N (data-parallel ranks)")
    ax.set_ylabel("scaling efficiency E(N) = thr(N) / (N x thr(1))")
    ax.set_title(textwrap.fill(title, 60))
    note = "regime: " + "; ".join(f"N={n}: {g}" for n, g in sorted({(r["nodes"], r["regime"]) for r in rows}))
    fig.text(0.5, 0.01, textwrap.fill(note, 110), ha="center", va="bottom", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    ax.grid(True, alpha=0.3)
    legend(ax)
    return save(fig, path)


def plot_comm_time(rows: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 5))
    positive = [1e3 * r["exposed_comm_s"] for r in rows if r["exposed_comm_s"] > 0]
    log_y = bool(positive) and max(positive) / min(positive) >= 10
    drawn: set[int] = set()
    for label, group in series(rows):
        # On a log axis a zero (N=1: nothing to exchange) cannot be drawn.
        pts = [(r["nodes"], 1e3 * r["exposed_comm_s"]) for r in group if not log_y or r["exposed_comm_s"] > 0]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
            drawn.update(n for n, _ in pts)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(drawn), [str(n) for n in sorted(drawn)])
    ax.minorticks_off()
    if log_y:
        ax.set_yscale("log")
        plain_log(ax.yaxis)
    ax.set_xlabel("nodes N (data-parallel ranks)")
    ax.set_ylabel("exposed communication time per step (ms)")
    ax.set_title("Exposed gradient communication per step")
    ax.grid(True, which="major", alpha=0.3)
    legend(ax)
    return save(fig, path)


def plot_layers(model: str, record: dict[str, Any], path: Path) -> Path:
    layers = largest_first(record["layer_bytes"])
    top = list(layers.items())[:TOP_LAYERS]
    names = [k for k, _ in top][::-1]  # largest at the top
    mb = [v / 1e6 for _, v in top][::-1]
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.35 * len(top) + 1.5)))
    ax.barh(names, mb)
    for y, v in enumerate(mb):
        ax.annotate(f"{v:.2f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.margins(x=0.15)
    ax.set_xlabel("gradient bytes per step (MB)")
    shown = f"top {len(top)} of {len(layers)} layers" if len(layers) > len(top) else f"all {len(layers)} layers"
    ax.set_title(f"{model}: gradient bytes per layer ({shown}, {sum(layers.values()) / 1e6:.2f} MB total)")
    return save(fig, path)


def plot_compression(rows: list[dict[str, Any]], path: Path) -> Path:
    """Bytes per step per scheme (log: schemes span decades), with the ratio to fp32 and the loss reached."""
    settings = sorted({(r["model"], r["nodes"]) for r in rows})
    one = len(settings) == 1
    labels = [r["scheme"] if one else f"{r['model']} N={r['nodes']}: {r['scheme']}" for r in rows][::-1]
    mb = [r["grad_bytes_per_step"] / 1e6 for r in rows][::-1]
    notes = [("fp32" if r["ratio"] < 1.05 else f"{r['ratio']:.0f}x less") + f", loss {r['loss_first']:.2f} -> "
             f"{r['loss_last']:.2f}" for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.45 * len(rows) + 1.6)))
    ax.barh(labels, mb, color="tab:blue")
    ax.set_xscale("log")
    for y, (v, note) in enumerate(zip(mb, notes)):
        ax.annotate(f"{v:.3g} MB ({note})", (v, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(min(mb) / 2, max(mb) * 30)  # room for the notes
    plain_log(ax.xaxis)
    ax.set_xlabel("bytes handed to collectives per step (MB, log)")
    where = f"{settings[0][0]} on {settings[0][1]} workers, " if one else ""
    ax.set_title(f"Gradient compression: bytes per step and loss reached\n({where}{rows[0]['steps']} timed steps)")
    return save(fig, path)


def plot_timeline_validation(rows: list[dict[str, Any]], path: Path) -> Path:
    """Predicted against measured step time, one point per cell (validate's timeline rows), log-log with
    the y = x line: predicted vs trace replay, and trace replay vs the trained run where there is one."""
    fig, ax = plt.subplots(figsize=(7, 6))
    pairs = [("predicted vs trace replay", "replay_step_s", "predicted_step_s", "o"),
             ("trace replay vs trained run", "run_step_s", "replay_step_s", "^")]
    values = []
    for label, x_key, y_key, marker in pairs:
        points = [(r[x_key], r[y_key]) for r in rows if r.get(x_key) and r.get(y_key)]
        if points:
            ax.scatter(*zip(*points), marker=marker, label=f"{label} ({len(points)})", alpha=0.8)
            values += [v for p in points for v in p]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, label="y = x")
    for factor in (0.9, 1.1):
        ax.plot([lo, hi], [lo * factor, hi * factor], color="grey", linewidth=0.5, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log(ax.xaxis)
    plain_log(ax.yaxis)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured step time (s)")
    ax.set_ylabel("predicted (or replayed) step time (s)")
    ax.set_title("Step time: timeline prediction vs trace replay vs trained run\n(one point per model, N and link; "
                 "dotted: ±10%)")
    legend(ax)
    return save(fig, path)


def plot_published_validation(rows: list[dict[str, Any]], path: Path) -> Path:
    """Predicted against published E(N) on real GPU clusters (validate published), one point per
    source, model and GPU count, with y = x and ±2 points."""
    fig, ax = plt.subplots(figsize=(7, 6))
    for source in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == source]
        ax.scatter([100 * r["published_e"] for r in mine], [100 * r["predicted_e"] for r in mine],
                   label=f"{source} ({len(mine)})", alpha=0.8)
    values = [100 * r[k] for r in rows for k in ("published_e", "predicted_e")]
    lo, hi = math.floor(min(values)) - 1, min(100, math.ceil(max(values)) + 1)
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, label="y = x")
    for offset in (-2, 2):
        ax.plot([lo, hi], [lo + offset, hi + offset], color="grey", linewidth=0.5, linestyle=":")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.xaxis.set_major_formatter(PercentFormatter())
    ax.yaxis.set_major_formatter(PercentFormatter())
    ax.set_xlabel("published E(N)")
    ax.set_ylabel("predicted E(N)")
    ax.set_title("Scaling efficiency: predicted vs published on real GPU clusters\n(the same defaults for every "
                 "row; dotted: ±2 points)")
    legend(ax)
    return save(fig, path)
