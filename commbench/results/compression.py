"""Compression side by side, from records: per model and N, each scheme's bytes per step, its ratio to
fp32, comm and step time, and what it did to training (loss at the first and last timed step)."""

from __future__ import annotations

import json
from typing import Any, Iterable

from commbench.results import setup

CONVERGENCE = ["steps=30", "warmup=3", "optimizer.lr=0.002", "optimizer.momentum=0.9"]  # trains on every scheme


def scheme_key(record: dict[str, Any]) -> str:
    return json.dumps([record.get("compression", "none"), record.get("compression_params") or {}], sort_keys=True)


def scheme_label(record: dict[str, Any]) -> str:
    """The scheme as tables and charts name it ("topk ratio=0.01"): the label the run's record got from
    the scheme's spec (record.py; the spec says which parameter it shows); for a record from before
    that field, the scheme with all its parameters."""
    if record.get("compression_label"):
        return record["compression_label"]
    params = record.get("compression_params") or {}
    return " ".join([record.get("compression", "none"), *(f"{k}={v}" for k, v in sorted(params.items()))])


# Runs that differ only in their compression compare: the same model, N, steps, optimizer and setup
# identity, bucket settings aside (PowerSGD runs with one bucket; its row says so).
SETTING = ("nodes", "steps", "warmup", "seed", "lr", "momentum",
           *(f for f in setup.SERIES if f not in ("compression", "compression_params", "bucket_cap_mb")))


def setting(record: dict[str, Any]) -> str:
    return setup.key(record, SETTING)


def compression_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest successful run per scheme for every setting that has more than one scheme."""
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in records:
        if r.get("status") == "ok" and "grad_bytes_per_step" in r:
            groups.setdefault(setting(r), {})[scheme_key(r)] = r  # later lines win
    rows = []
    for by_scheme in groups.values():
        if len(by_scheme) < 2:
            continue
        for r in sorted(by_scheme.values(), key=lambda r: -r["grad_bytes_per_step"]):
            fp32 = r.get("uncompressed_bytes_per_step") or 4 * r["params"]
            rows.append({
                "model": r["model"], "nodes": r["nodes"], "scheme": scheme_label(r),
                "compression_params": r.get("compression_params") or {},
                "grad_bytes_per_step": r["grad_bytes_per_step"], "sent_bytes_per_step": r["sent_bytes_per_step"],
                "ratio": fp32 / r["grad_bytes_per_step"],
                "sent_ratio": r.get("sent_compression_ratio"), "collectives_per_step": r["collectives_per_step"],
                "exposed_comm_s": r["exposed_comm_s"], "comm_busy_s": r.get("comm_busy_s"), "codec_time_s": r.get("codec_time_s"), "step_time_s": r["step_time_s"],
                "loss_first": r["loss_first"], "loss_last": r["loss_last"], "steps": r["steps"],
                "bucket_cap_mb": setup.value(r, "bucket_cap_mb"),
            })
    return rows
