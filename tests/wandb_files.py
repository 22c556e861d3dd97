"""Read a W&B offline run back: what tests compare with the record.

wandb 0.31 writes an offline run as `run-<id>.wandb`, a LevelDB-log-framed stream (32 KiB blocks,
7-byte chunk headers: crc32, length, type) of `wandb_internal_pb2.Record` messages, after a 7-byte
":W&B" file header, and ships no reader for it; tables land as JSON under files/media/table/.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

from wandb.proto import wandb_internal_pb2 as pb

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1, f"not a .wandb file: {path}"
    pos, parts = HEADER, bytearray()
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if left < HEADER or (kind == 0 and length == 0):  # block trailer or preallocated tail
            pos += left
            continue
        if pos + HEADER + length > len(data):  # a chunk still being written
            return
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"CRC mismatch in {path}"
        parts += chunk
        if kind in (FULL, LAST):
            yield bytes(parts)
            parts = bytearray()


def items(entries) -> dict[str, Any]:
    """History/summary/config items -> nested dict. Values are JSON strings; W&B's core writes a
    logged dict (a table's reference) flattened, under nested_key."""
    out: dict[str, Any] = {}
    for it in entries:
        *parents, last = [it.key] if it.key else list(it.nested_key)
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = json.loads(it.value_json)
    return out


def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def read_run(run_dir: Path, wait_s: float = 30.0) -> dict[str, Any]:
    """One offline run folder -> run attributes, config, history rows, final summary, tables.

    wandb-core, a process of its own, writes the log: on a loaded machine its last records can land
    after wandb.finish() returned, so read until the run's exit record is there (bounded)."""
    deadline = time.monotonic() + wait_s
    while (out := parse_run(run_dir))["exit_code"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "start_ns" in out and out["exit_code"] is not None, (
        f"{run_dir}: no complete W&B run after {wait_s:.0f} s ({[p.stat().st_size for p in run_dir.glob('run-*.wandb')]} B)")
    return out


def parse_run(run_dir: Path) -> dict[str, Any]:
    [log] = run_dir.glob("run-*.wandb")
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "exit_code": None}
    for raw in payloads(log):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.update(project=r.project, group=r.run_group, job_type=r.job_type, tags=list(r.tags),
                       name=r.display_name, start_ns=r.start_time.ToNanoseconds())
            out["config"].update(items(r.config.update))
        elif kind == "config":
            out["config"].update(items(rec.config.update))
        elif kind == "history":
            out["history"].append(items(rec.history.item))
        elif kind == "summary":
            merge(out["summary"], items(rec.summary.update))
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    out["config"].pop("_wandb", None)
    # A logged table's summary entry points at its JSON file.
    out["tables"] = {key: json.loads((run_dir / "files" / value["path"]).read_text())
                     for key, value in out["summary"].items()
                     if isinstance(value, dict) and value.get("_type") == "table-file"}
    return out


def runs(results_dir: Path) -> list[dict[str, Any]]:
    """Every offline run under ${results_dir}/wandb, oldest first (folder names have whole seconds)."""
    return sorted((read_run(d) for d in (results_dir / "wandb").glob("offline-run-*")), key=lambda r: r["start_ns"])
