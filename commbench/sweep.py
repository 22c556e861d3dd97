"""A sweep (`python -m commbench -m model=a,b nodes=1,2,4`): progress per cell, a one-line result per
finished cell, and at the end the local report and a W&B summary run over the results folder.

Hydra runs the cells one after another in this process (its basic launcher); SweepEnd is the Hydra
callback (conf/config.yaml, hydra.callbacks) that closes the sweep.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from commbench.sinks.console import console, fmt_bytes, fmt_ms

def cell_line(record: dict[str, Any], efficiency: float | None) -> str:
    """A finished cell in one line."""
    scheme = "" if record["compression"] == "none" else f" compression={record['compression']}"
    text = (f"{record['model']} nodes={record['nodes']}{scheme}: {fmt_bytes(record['grad_bytes_per_step'])}/step, "
            f"step {fmt_ms(record['step_time_s'])} (exposed comm {fmt_ms(record['exposed_comm_s'])}), "
            f"{record['throughput']:.1f} samples/s")
    if record["nodes"] == 1:
        return text + ", the E(N) baseline"
    if efficiency is None:
        return text + ", no nodes=1 baseline of this setup yet"
    from commbench.results.scaling import regime

    return text + f", E({record['nodes']}) {efficiency:.1%} ({regime(record)})"


class Sweep:
    """This process's sweep so far: when it started, the cells it ran (not skipped), those that failed."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.k = 0  # the cell announced last
        self.ran = 0
        self.failed = 0
        self.warned: set[str] = set()

    def eta(self, k: int, total: int) -> str:
        """[k/total], with the time left once a cell has finished (the mean cell so far)."""
        now = time.monotonic()
        if k == 1 and self.k != 1:
            self.t0 = now
        self.k = k
        if self.t0 is None or k == 1:
            return f"[{k}/{total}]"
        left = (now - self.t0) / (k - 1) * (total - k + 1)
        return f"[{k}/{total}, ~{left / 60:.0f} min left]" if left >= 90 else f"[{k}/{total}, ~{left:.0f} s left]"


SWEEP = Sweep()


def ran_a_cell() -> None:
    SWEEP.ran += 1


def cell_failed() -> None:
    SWEEP.failed += 1


def warn_once(text: str, when: bool = True) -> None:
    """A warning that every cell of a sweep would repeat, said once."""
    if when and text not in SWEEP.warned:
        SWEEP.warned.add(text)
        print(f"commbench: warning: {text}", file=sys.stderr)


def announce(cell: tuple[int, int] | None, text: str, start: bool = False) -> None:
    """A line about a sweep's cell k of total: [k/total] (with the time left, where a cell starts)."""
    prefix = (f"{SWEEP.eta(*cell)} " if start else f"[{cell[0]}/{cell[1]}] ") if cell else ""
    console.print(f"[bold]{prefix}[/bold]{text}", highlight=False)


# ---------------------------------------------------------------- what the summary run logs
Rows = tuple[list[str], list[list[Any]]]


def summary_tables(records: list[dict[str, Any]], rows: list[dict[str, Any]],
                   validation: list[dict[str, Any]]) -> dict[str, Rows]:
    """Cross-model tables: bytes vs params (newest run per model), the scaling rows, per-layer bytes
    of every model, and measured vs predicted comm time where busbw fits and replays exist."""
    from commbench.results.compression import compression_rows
    from commbench.sinks.report import newest_per_model
    from commbench.stats import largest_first

    newest = newest_per_model(records)
    tables: dict[str, Rows] = {
        "bytes_vs_params": (["model", "params", "grad_bytes_per_step"],
                            [[m, r["params"], r["grad_bytes_per_step"]] for m, r in sorted(newest.items())]),
        "layers": (["model", "layer", "grad_bytes"],
                   [[m, layer, n] for m, r in sorted(newest.items())
                    for layer, n in largest_first(r.get("layer_bytes") or {}).items()]),
    }
    if rows:
        cols = ["series", "model", "nodes", "throughput", "efficiency", "step_time_s", "compute_time_s",
                "codec_time_s", "exposed_comm_s", "optimizer_time_s", "grad_bytes_per_step", "sent_bytes_per_step",
                "regime"]
        tables["scaling"] = (cols, [[r.get(c) for c in cols] for r in rows])
    if validation:
        cols = ["model", "nodes", "payload_bytes", "measured_s", "predicted_s", "error"]
        tables["measured_vs_predicted"] = (cols, [[v[c] for c in cols] for v in validation])
    compressed = compression_rows(records)
    if compressed:
        cols = ["model", "nodes", "scheme", "grad_bytes_per_step", "ratio", "sent_bytes_per_step", "exposed_comm_s",
                "step_time_s", "loss_first", "loss_last"]
        tables["compression"] = (cols, [[r[c] for c in cols] for r in compressed])
    return tables


def summary_lines(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Line charts against nodes, one line per scaling series (a model, or a model's variant)."""
    from commbench.results.scaling import headline_rows
    from commbench.sinks.charts import series

    groups = series(rows)
    _, where = headline_rows(rows)
    def spec(key: str, scale: float, title: str) -> dict[str, Any]:
        pts = [[(r["nodes"], scale * r[key]) for r in g if r[key] is not None] for _, g in groups]
        return {"keys": [label for label, _ in groups], "xs": [[n for n, _ in p] for p in pts],
                "ys": [[v for _, v in p] for p in pts], "title": title}
    return {"efficiency_vs_nodes": spec("efficiency", 1.0, f"E(N) vs nodes: {where}"),
            "comm_time_vs_nodes": spec("exposed_comm_s", 1e3, "Exposed comm time per step (ms) vs nodes")}


def close_sweep(results_dir: str, settings, new_results: bool = True) -> list[Path]:
    """The sweep's end: the local report, then the W&B summary run (not when no cell ran: the last
    summary run holds these results). Each step says why it did nothing rather than failing the
    sweep whose cells are already recorded."""
    from commbench.sinks import wandb_log
    from commbench.sinks.report import load_results, write_report

    folder = Path(results_dir)
    try:
        results = load_results(folder)
    except ValueError as exc:
        console.print(f"commbench: no report: {exc}", highlight=False)
        return []
    paths = write_report(folder, results=results)
    console.print(f"report: {folder / 'report' / 'summary.md'} ({len(paths) - 1} charts)", highlight=False)
    if not new_results and settings.enabled:
        console.print("W&B summary run: none (every cell was recorded earlier; the last sweep's summary run "
                      "holds these results)", highlight=False)
        return paths
    where = wandb_log.log_sweep(settings, summary_tables(results.records, results.rows, results.checked),
                                summary_lines(results.rows), [p for p in paths if p.suffix == ".png"])
    if where:
        console.print(f"W&B summary run: {where}", highlight=False)
    return paths


class SweepEnd(Callback):
    """Hydra callback: after the last cell of a multirun, report on the results folder."""

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        from commbench.sinks import wandb_log

        results_dir = str(Path(config.results_dir).expanduser().resolve())
        group = Path(str(config.hydra.sweep.dir)).name
        try:
            settings = wandb_log.settings_from(OmegaConf.to_container(config.logging), results_dir, group)
        except wandb_log.WandbConfigError:
            settings = wandb_log.settings_from(None, results_dir)  # already reported by the cells
        close_sweep(results_dir, settings, new_results=SWEEP.ran > 0)
