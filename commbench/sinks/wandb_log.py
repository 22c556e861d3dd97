"""Weights & Biases: one W&B run per commbench run (config, per-step history, summary, per-bucket and
per-layer tables), and a summary run at the end of a sweep. Only the driver logs; workers never do.

W&B is a view of the results, never their store: runs.jsonl is written first, and a W&B failure
never fails a run. Online mode that cannot reach its server (no key, no network, server error) warns
once and logs offline instead, for `wandb sync` later; if W&B fails offline too, it warns once and is
off for the rest of the process. Either way the run and the sweep finish with their records and
local report intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The settings and the failure handling live in wandb_settings; callers use them through this module.
from commbench.sinks.wandb_settings import (  # noqa: F401
    WandbConfigError, WandbSettings, api_key, check, guarded, reset, server_url, settings_from)

TAG_CHARS = 64  # W&B refuses a longer tag (a custom model's id can be)


def open_run(settings: WandbSettings, *, name: str, job_type: str, tags: list[str], config: dict[str, Any]):
    import os

    # Before wandb's first init: its own lines would drown commbench's, and its crash reports would
    # try to leave the machine. A user's setting wins.
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    import wandb

    Path(settings.dir).mkdir(parents=True, exist_ok=True)
    return wandb.init(
        mode=settings.effective_mode, project=settings.project, entity=settings.entity, dir=settings.dir,
        group=settings.group, job_type=job_type, name=name, tags=[t[:TAG_CHARS] for t in (*tags, *settings.tags)], config=config,
        reinit="create_new",
        settings=wandb.Settings(
            init_timeout=settings.init_timeout_s, finish_timeout=settings.finish_timeout_s, silent=True,
            console="off",
            # commbench measures its own figures; W&B's system monitor would also probe cloud
            # metadata addresses.
            x_disable_stats=True, x_disable_machine_info=True, x_disable_meta=True,
            disable_git=True, save_code=False),
    )


def where(run, settings: WandbSettings) -> str:
    """The run's folder (offline, for `wandb sync`) or its URL (online)."""
    return run.dir if settings.effective_mode == "offline" else run.url


# ---------------------------------------------------------------- one run
def run_tags(record: dict[str, Any]) -> list[str]:
    return [record["model"], f"nodes={record['nodes']}", record["cluster_kind"], f"compression={record['compression']}"]


STEP_KEYS = ("step_time_s", "forward_time_s", "backward_time_s", "compute_time_s", "codec_time_s",
             "exposed_comm_s", "optimizer_time_s", "imbalance_s", "comm_busy_s", "overlap_s")


def step_rows(record: dict[str, Any]) -> list[dict[str, float]]:
    """W&B history: one row per timed step (the split over all ranks), under step/ so the summary's
    medians keep the plain names."""
    per = record["per_step"]
    samples = record["nodes"] * record["batch_size"]
    steps = len(per["step_time_s"])
    rows = []
    for i in range(steps):
        row = {f"step/{k}": per[k][i] for k in STEP_KEYS if k in per}
        step = per["step_time_s"][i]
        row.update({"step/payload_bytes": per["payload_bytes"][i],
                    "step/throughput": samples / step if step > 0 else 0.0})
        rows.append(row)
    return rows


SUMMARY_KEYS = (
    "model", "nodes", "compression", "cluster_kind", "params", "grad_bytes_per_step", "sent_bytes_per_step",
    "buffer_bytes_per_step", "collectives_per_step", "step_time_s", "step_time_p90_s", "forward_time_s",
    "backward_time_s", "compute_time_s", "codec_time_s", "exposed_comm_s", "exposed_comm_p90_s",
    "optimizer_time_s", "imbalance_s", "comm_busy_s", "overlap_s", "throughput", "wire_ratio",
    "threads_per_worker", "config_hash",
)


def run_summary(record: dict[str, Any], efficiency: float | None) -> dict[str, Any]:
    from commbench.results.scaling import regime

    out = {k: record[k] for k in SUMMARY_KEYS if record.get(k) is not None}
    out["regime"] = regime(record)
    wire = record.get("wire_bytes_per_step")
    if wire:
        out["wire_bytes_per_step"] = sum(wire) / len(wire)  # mean over nodes' interfaces
    if efficiency is not None:
        out["efficiency"] = efficiency
    return out


def bucket_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    columns = ["bucket", "payload_bytes", "numel", "params", "dtype"]
    return columns, [[b["index"], b["payload_bytes"], b["numel"], b["params"], b["dtype"]] for b in record["buckets"]]


def trace_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The step trace (record["trace"]), a row per rank and bucket in hook order: the bucket's
    payload, dtype, collective and ready offset, beside the rank's compute medians."""
    columns = ["rank", "bucket", "payload_bytes", "dtype", "collective", "ready_offset_s", "forward_s", "backward_s",
               "codec_s", "optimizer_s"]
    trace = record.get("trace") or {"buckets": [], "ranks": []}
    rows = [[r["rank"], b["index"], b["payload_bytes"], b["dtype"], b["collective"], offset, r["forward_s"],
             r["backward_s"], r["codec_s"], r["optimizer_s"]]
            for r in trace["ranks"] for b, offset in zip(trace["buckets"], r["ready_offsets_s"])]
    return columns, rows


def layer_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    from commbench.stats import largest_first

    layers = largest_first(record.get("layer_bytes") or {})
    total = sum(layers.values()) or 1
    return ["layer", "grad_bytes", "share"], [[k, v, v / total] for k, v in layers.items()]


def table(rows: tuple[list[str], list[list[Any]]]):
    import wandb

    return wandb.Table(columns=rows[0], data=rows[1])


def log_run(settings: WandbSettings, record: dict[str, Any], efficiency: float | None = None) -> str | None:
    """Log one successful record; the W&B run folder (offline) or URL (online), None if W&B is off."""
    from commbench.results.store import HASHED_FIELDS

    if not settings.enabled:
        return None

    def action() -> str:
        # What identifies the run (the fields its config_hash covers) is its W&B config.
        config = {k: record[k] for k in (*HASHED_FIELDS, "config_hash") if k in record}
        run = open_run(settings, name=f"{record['model']}-n{record['nodes']}", job_type="run",
                       tags=run_tags(record), config=config)
        with run:
            rows = step_rows(record)
            for i, row in enumerate(rows):
                if i == len(rows) - 1:
                    row = {**row, "buckets": table(bucket_rows(record)), "layers": table(layer_rows(record)),
                           "trace_buckets": table(trace_rows(record))}
                run.log(row, step=i)
            run.summary.update(run_summary(record, efficiency))
            if record.get("trace"):
                run.summary["trace"] = record["trace"]  # the same field as the record's
            return where(run, settings)

    return guarded(settings, action)


# ---------------------------------------------------------------- the sweep's summary run
def image_key(png: Path) -> str:
    """report/<chart>; the per-layer chart is report/layers whichever model it shows, so a dashboard
    panel finds it."""
    return "report/layers" if png.stem.startswith("layers_") else f"report/{png.stem}"  # also report/compression


def log_sweep(settings: WandbSettings, tables: dict[str, tuple[list[str], list[list[Any]]]],
              lines: dict[str, dict[str, Any]], images: list[Path]) -> str | None:
    """The cross-model tables, line charts (efficiency and comm time against nodes, one line per
    model) and the local report's PNGs, as one run of job_type sweep-summary in the sweep's group."""
    if not settings.enabled:
        return None

    def action() -> str:
        import wandb

        run = open_run(settings, name=f"summary-{settings.group or 'results'}", job_type="sweep-summary",
                       tags=["summary"], config={"results_dir": settings.dir})
        with run:
            data: dict[str, Any] = {name: table(rows) for name, rows in tables.items()}
            for name, spec in lines.items():
                data[name] = wandb.plot.line_series(xs=spec["xs"], ys=spec["ys"], keys=spec["keys"],
                                                    title=spec["title"], xname="nodes")
            data.update({image_key(p): wandb.Image(str(p)) for p in images})
            run.log(data)
            return where(run, settings)

    return guarded(settings, action)
