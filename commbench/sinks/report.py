"""A results folder as a report: PNG charts (matplotlib, Agg) and summary.md, in ${results_dir}/report/.

Efficiency and exposed communication come from scaling.scaling_rows; nothing is recomputed here.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commbench.results import setup
from commbench.results.compression import compression_rows
from commbench.results.store import records_of
from commbench.results.validation import timeline_rows, validation_rows
from commbench.results.scaling import headline_rows, scaling_rows
from commbench.results.steps import step_spans
from commbench.sinks.gantt import chrome_trace, plot_step
from commbench.sinks.charts import (measured_nodes, plot_bytes_vs_params, plot_comm_time, plot_compression,
                                    plot_efficiency, plot_layers, plot_published_validation,
                                    plot_timeline_validation, series)

def ok_records(results_dir: Path) -> list[dict[str, Any]]:
    if not (results_dir / "runs.jsonl").exists():
        raise ValueError(f"no runs.jsonl in {results_dir}")
    records = records_of(results_dir, "run")
    if not records:
        raise ValueError(f"no successful runs in {results_dir / 'runs.jsonl'}")
    return records


def newest_per_model(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest run per model, an uncompressed one where there is one (the bytes chart shows fp32
    payload; later lines win)."""
    newest: dict[str, dict[str, Any]] = {}
    for uncompressed in (False, True):
        for r in records:
            if not uncompressed or setup.value(r, "compression") == "none":
                newest[r["model"]] = r
    return newest


def compression_md(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["## Compression", "", "| model | N | scheme | MB/step | vs fp32 | comm (ms) | step (ms) | loss first -> last |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['nodes']} | {r['scheme']} | {r['grad_bytes_per_step'] / 1e6:.3f} | "
              f"{r['ratio']:.1f}x | {1e3 * r['exposed_comm_s']:.2f} | {1e3 * r['step_time_s']:.2f} | "
              f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} |" for r in rows]
    return lines + [""]


def layers_source(newest: dict[str, dict[str, Any]], records: list[dict[str, Any]],
                  model: str | None) -> tuple[str, dict[str, Any]] | None:
    """The model to chart (default: most bytes per step) and its newest record with layer_bytes."""
    if model is None:
        model = max(newest, key=lambda m: newest[m]["grad_bytes_per_step"])
    with_layers = [r for r in records if r["model"] == model and r.get("layer_bytes")]
    if not with_layers:
        if model not in newest:
            raise ValueError(f"no successful run of model {model!r}; known: {', '.join(sorted(newest))}")
        return None
    return model, with_layers[-1]


def validation(results_dir: Path) -> list[dict[str, Any]]:
    """Measured vs alpha-beta-predicted comm time, where busbw fits and replays of one setup were recorded."""
    return validation_rows(records_of(results_dir, "busbw"), records_of(results_dir, "replay"))


def timeline(results_dir: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Predicted vs trace-replayed vs trained step time, where trace replays were recorded."""
    return timeline_rows(records, records_of(results_dir, "replay"), records_of(results_dir, "busbw"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1e3 * value:.1f}"


def timeline_md(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["## Step time: predicted timeline vs trace replay vs trained run", "",
             "| model | N | link | trace | predicted (ms) | replay (ms) | run (ms) | predict vs replay | replay vs run |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['nodes']} | {r['link']} | {r['trace']} | {_ms(r['predicted_step_s'])} | {_ms(r['replay_step_s'])} | "
              f"{_ms(r['run_step_s'])} | {r['predict_vs_replay']:+.1%} | "
              + ("-" if r["replay_vs_run"] is None else f"{r['replay_vs_run']:+.1%}") + " |" for r in rows]
    return lines + [""]


def validation_md(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["## Measured vs predicted comm time (ring alpha-beta, busbw fit)", "",
             "| model | N | payload (MB) | measured (ms) | predicted (ms) | error |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['nodes']} | {r['payload_bytes'] / 1e6:.2f} | {1e3 * r['measured_s']:.2f} | "
              f"{1e3 * r['predicted_s']:.2f} | {r['error']:+.1%} |" for r in rows]
    return lines + [""]


def summary(newest: dict[str, dict[str, Any]], rows: list[dict[str, Any]], pngs: list[Path],
            checked: list[dict[str, Any]] = (), compressed: list[dict[str, Any]] = (),
            timelines: list[dict[str, Any]] = ()) -> str:
    nodes = measured_nodes(rows)
    head = ["series", "params", "MB/step"] + [h for n in nodes for h in (f"comm N={n} (ms)", f"E({n})")]
    _, where = headline_rows(rows)
    regimes = sorted({(r["nodes"], r["regime"]) for r in rows})
    lines = ["# commbench report", "", f"**{where}.** " + "; ".join(f"N={n}: {g}" for n, g in regimes), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, group in series(rows):
        by_n = {r["nodes"]: r for r in group}
        params = newest[group[0]["model"]]["params"]
        cells = [label, f"{params:,}", f"{group[0]['grad_bytes_per_step'] / 1e6:.2f}"]
        for n in nodes:
            r = by_n.get(n)
            cells.append(f"{1e3 * r['exposed_comm_s']:.2f}" if r else "-")
            cells.append(f"{100 * r['efficiency']:.1f}%" if r and r["efficiency"] is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "MB = 10^6 bytes of gradient payload per step (fp32 unless the series names a scheme); comm = "
              "exposed communication time per step; E(N) = throughput(N) / (N x throughput(1)), against the "
              "nodes=1 run of the same setup (threads per worker included).", ""]
    lines += timeline_md(list(timelines))
    lines += validation_md(list(checked))
    lines += compression_md(list(compressed))
    lines += [f"![{p.stem}]({p.name})" for p in pngs]
    return "\n".join(lines) + "\n"


def step_record(records: list[dict[str, Any]], model: str | None) -> dict[str, Any] | None:
    """The run whose step the timeline shows (of `model` if given): one that crossed a network and was
    not CPU-bound where there is one (it has a prediction to show beside it), then the largest N, then
    the newest."""
    from commbench.results.scaling import cpu_bound, network_measured

    timed = [r for r in records if r.get("step_timeline") and (model is None or r["model"] == model)]
    return max(reversed(timed), key=lambda r: (network_measured(r) and not cpu_bound(r), r["nodes"])) if timed else None


def write_step(record: dict[str, Any], busbw_records: list[dict[str, Any]], out: Path) -> list[Path]:
    """step_timeline.png (the Gantt chart) and step_timeline.trace.json (Chrome trace events) of its
    median step, measured per rank beside predicted."""
    spans, predicted = step_spans(record, busbw_records)
    timeline = record["step_timeline"]
    title = (f"{record['model']}, N={record['nodes']} ({setup.describe(record)}): timed step {timeline['step'] + 1} "
             f"of {record['steps']}, {1e3 * timeline['step_s']:.1f} ms (the median), measured per rank; {predicted}")
    meta = {"model": record["model"], "nodes": record["nodes"], "config_hash": record.get("config_hash"),
            "step": timeline["step"], "prediction": predicted}
    return [plot_step(spans, textwrap.fill(title, 110), out / "step_timeline.png"),
            chrome_trace(spans, meta, out / "step_timeline.trace.json")]


@dataclass
class Results:
    """A results folder, read once: what the report and the sweep's W&B summary are made from."""

    records: list[dict[str, Any]]  # successful runs
    rows: list[dict[str, Any]]  # scaling_rows of them
    checked: list[dict[str, Any]]  # measured vs predicted comm time (validation)
    timelines: list[dict[str, Any]] = ()  # predicted vs replayed vs trained step time


def load_results(results_dir: Path) -> Results:
    """ValueError when the folder holds no successful run."""
    records = ok_records(results_dir)
    return Results(records, scaling_rows(records, records_of(results_dir, "replay")), validation(results_dir),
                   timeline(results_dir, records))


def write_report(results_dir: str | Path, model_for_layers: str | None = None,
                 results: Results | None = None, published: list[dict[str, Any]] = ()) -> list[Path]:
    """Charts and summary.md in ${results_dir}/report/, with the published validation where its rows
    (results.published.published_rows) are given; the written paths."""
    results_dir = Path(results_dir).expanduser()
    results = results or load_results(results_dir)
    records, rows = results.records, results.rows
    newest = newest_per_model(records)
    layers = layers_source(newest, records, model_for_layers)
    out = results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    pngs = [plot_bytes_vs_params(newest, out / "bytes_vs_params.png")]
    if rows:  # scaling_rows needs a throughput
        pngs += [p for p in (plot_efficiency(rows, out / "efficiency_vs_nodes.png"),
                             plot_comm_time(rows, out / "comm_time_vs_nodes.png")) if p is not None]
    if layers:
        file = layers[0].replace("/", "__")  # a model id: timm/ghostnet_100
        pngs.append(plot_layers(layers[0], layers[1], out / f"layers_{file}.png"))
    compressed = compression_rows(records)
    if compressed:
        pngs.append(plot_compression(compressed, out / "compression.png"))
    timelines = list(results.timelines)
    if timelines:
        pngs.append(plot_timeline_validation(timelines, out / "timeline_validation.png"))
    if published:
        pngs.append(plot_published_validation(list(published), out / "published_validation.png"))
    stepped = step_record(records, model_for_layers)
    traces = write_step(stepped, records_of(results_dir, "busbw"), out) if stepped else []
    pngs += traces[:1]
    md = out / "summary.md"
    md.write_text(summary(newest, rows, pngs, results.checked, compressed, timelines))
    return pngs + traces[1:] + [md]
