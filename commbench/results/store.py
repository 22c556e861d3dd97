"""Records on disk: one JSON object per line, appended atomically. Runs go to ${results_dir}/runs.jsonl,
busbw sweeps to busbw.jsonl, trace replays to replay.jsonl (FILES).

Appends take an exclusive lock and write each line with a single O_APPEND write, so runs that
finish at the same time never interleave. Reading skips a damaged line (e.g. a truncated last
line after a power loss) and reports it, so no earlier record is lost.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commbench.results.schema import SCHEMA_VERSION, upgrade


@dataclass
class RecordFile:
    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers that did not parse


# Keys of the record that identify a run: two runs with the same values measure the same thing.
HASHED_FIELDS = (
    "model", "model_kwargs", "nodes", "steps", "warmup", "batch_size", "image_size", "seed",
    "use_gpu", "bucket_cap_mb", "broadcast_buffers", "compression", "compression_params", "cluster_kind",
    "cluster_address",
    "bandwidth_bits_per_s", "latency_s", "loss_percent", "lr", "momentum", "threads_per_worker", "model_digest",
)
# Fields added after records existed: left out of the hash at the values the records before them ran
# with (facts about those records, not the current defaults), so earlier hashes hold.
LATER_FIELDS = {"compression_params": {}, "lr": 1e-3, "momentum": 0.0, "threads_per_worker": None,
                "model_digest": None}

FILES = {"run": "runs.jsonl", "busbw": "busbw.jsonl", "replay": "replay.jsonl"}  # kind -> file
KINDS = {name: kind for kind, name in FILES.items()}  # file -> kind; any other file holds runs


def path_of(results_dir: str | os.PathLike, kind: str) -> Path:
    return Path(results_dir).expanduser().resolve() / FILES[kind]


def records_of(results_dir: str | os.PathLike, kind: str, ok_only: bool = True) -> list[dict[str, Any]]:
    """The records of one kind, oldest first, in the current form; ok_only drops failed runs."""
    out = []
    for r in read_records(path_of(results_dir, kind), kind).records:
        if not ok_only or r.get("status", "ok") == "ok":
            out.append(r)
    return out


def versions() -> dict[str, str]:
    import ray
    import torch

    return {"torch": torch.__version__, "ray": ray.__version__, "python": platform.python_version()}


def append_record(path: Path, record: dict[str, Any]) -> None:
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _seal_partial_line(fd)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # also releases the lock


def _seal_partial_line(fd: int) -> None:
    """If a crash left a line without its newline, end it so the next record stays parseable."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")


def read_records(path: Path, kind: str | None = None) -> RecordFile:
    """Every record in `path`, each upgraded to the current form (schema.upgrade) as a record of
    `kind` (default: what the file's name holds)."""
    kind = kind or KINDS.get(Path(path).name, "run")
    out = RecordFile()
    if not path.exists():
        return out
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                out.bad_lines.append(number)
                continue
            if isinstance(record, dict):
                out.records.append(upgrade(record, kind))
            else:
                out.bad_lines.append(number)
    return out


def finished_hashes(path: Path) -> set[str]:
    """config_hash of every successful run: what `resume` skips."""
    return {r["config_hash"] for r in read_records(path).records
            if r.get("status") == "ok" and "config_hash" in r}


def provenance() -> dict[str, Any]:
    """Where and when a record was made, and with what."""
    return {"versions": versions(), "host": socket.gethostname(), "argv": sys.argv[1:],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def base_record(plan, kind: str = "run") -> dict[str, Any]:
    """The fields every record has, successful or failed: its kind and schema version, all that
    identifies the run (what its config_hash covers), the hash, the setup identity, and provenance."""
    return {"kind": kind, "schema": SCHEMA_VERSION, **plan.identity(), "config_hash": plan.config_hash(),
            **plan.setup(), **provenance()}


def collective_record(plan, kind: str) -> dict[str, Any]:
    """The fields a busbw or replay record starts with: its kind and schema version, N, the setup
    identity, provenance."""
    return {"kind": kind, "schema": SCHEMA_VERSION, "nodes": plan.nodes, **plan.setup(), **provenance()}


def failed_record(plan, reason: str, **timings: float) -> dict[str, Any]:
    return {**base_record(plan), "status": "failed", "error": reason, **timings}
