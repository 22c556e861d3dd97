"""Record versions: every record carries `schema`, and `upgrade` brings an older record to the current
form. Every read goes through it (store.read_records), so readers only ever see current records.

Version 1: any record without `schema` (written before it existed). Over its lifetime:
  - runs.jsonl lines without `kind` (all runs),
  - no field yet for parts of the setup identity (setup.DEFAULTS: what such a record measured),
  - `comm_time_s` / `comm_time_p90_s` meant two things: in a run and a trace replay the exposed
    communication (runs from before the step split: the time blocked after the last bucket, per step
    in `per_step`), in a back-to-back replay the whole replayed step,
  - replays without `mode` (before trace replays: back to back, only `comm_time_s` timed),
  - trace replays without `trace_nodes` (before trace=run: a nodes=1 run's trace),
  - `per_step` without `payload_bytes` (every step handed over `grad_bytes_per_step`; summarize checked).
Version 2: `schema`; exposed communication is `exposed_comm_s` / `exposed_comm_p90_s` in runs and both
replay modes, and nothing is called `comm_time_s`: a back-to-back replay's whole step of collectives
is its `step_time_s` (its exposed comm is the same figure, as nothing else runs).
"""

from __future__ import annotations

import copy
from typing import Any

from commbench.results.setup import DEFAULTS

SCHEMA_VERSION = 2
UNVERSIONED = 1  # a record without `schema`

# version-1 name -> current name, where they measured the same thing (runs, trace replays and the
# back-to-back replays, whose exposed comm is their whole step)
RENAMED = {"comm_time_s": "exposed_comm_s", "comm_time_p90_s": "exposed_comm_p90_s"}


def version(record: dict[str, Any]) -> int:
    return record.get("schema", UNVERSIONED)


def upgrade(record: dict[str, Any], kind: str = "run") -> dict[str, Any]:
    """`record` in the current form: the record itself when it is current, else an upgraded copy.
    `kind`: what the file it came from holds (a record that names its kind keeps it)."""
    if version(record) >= SCHEMA_VERSION:
        return record
    out = {"kind": kind, **record}
    for field, default in DEFAULTS.items():
        if out.get(field) is None:
            out[field] = copy.copy(default)  # a record of its own: {} not shared
    if out["kind"] == "replay":
        _replay_v1(out)
    _rename(out)
    if isinstance(out.get("per_step"), dict):
        out["per_step"] = _per_step_v1(out["per_step"], out.get("grad_bytes_per_step"))
    out["schema"] = SCHEMA_VERSION
    return out


def _rename(record: dict[str, Any]) -> None:
    for old, new in RENAMED.items():
        if old in record:
            value = record.pop(old)
            if record.get(new) is None:
                record[new] = value


def _replay_v1(record: dict[str, Any]) -> None:
    if "mode" not in record:  # before trace replays: back to back, comm_time_s the whole step
        record["mode"] = "back_to_back"
        for new, old in (("step_time_s", "comm_time_s"), ("step_time_p90_s", "comm_time_p90_s")):
            if record.get(new) is None and old in record:
                record[new] = record[old]
    elif record["mode"] == "trace" and "trace_nodes" not in record:
        record["trace_nodes"] = 1


def _per_step_v1(per_step: dict[str, Any], payload: int | None) -> dict[str, Any]:
    out = dict(per_step)
    _rename(out)
    steps = len(out.get("step_time_s") or [])
    if "payload_bytes" not in out and payload is not None and steps:
        out["payload_bytes"] = [payload] * steps
    return out
