"""The setup identity: everything besides the model and N that changes what a record measured.

Every record of every kind (run, busbw, replay) stores these fields (`device`, which the workers
report, only successful runs). Records are combined only
where the fields a join depends on agree; `differences` names the ones that do not, so a refused
join says why in one line. Records written before a field existed are read with its default filled
in (schema.upgrade, from DEFAULTS).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

# field -> what a record that predates it measured (schema.upgrade fills it in): facts about those
# records, not the current defaults
DEFAULTS: dict[str, Any] = {
    "cluster_kind": "local", "cluster_address": None,
    "bandwidth_bits_per_s": None, "latency_s": None, "loss_percent": None,
    "use_gpu": False, "device": None,
    "compression": "none", "compression_params": {}, "bucket_cap_mb": 25.0,
    "broadcast_buffers": True,
    "threads_per_worker": None, "image_size": None, "batch_size": None,
    "host": None, "host_cpus": None,
}
SETUP: tuple[str, ...] = tuple(DEFAULTS)

# What a join depends on:
NETWORK = ("cluster_kind", "cluster_address", "bandwidth_bits_per_s", "latency_s", "loss_percent", "use_gpu",
           "host")  # what a collective crossed: busbw fits vs replays
BUCKETS = ("model", "model_kwargs", "compression", "compression_params", "bucket_cap_mb")  # DDP's bucket layout
COMPUTE = ("model", "model_kwargs", "batch_size", "image_size", "threads_per_worker", "use_gpu", "device",
           "host", "host_cpus", "compression", "compression_params")  # a step's compute (the trace)
SERIES = ("model", "model_kwargs", *SETUP)  # a scaling series: everything but N

LABELS = {"bandwidth_bits_per_s": "bandwidth", "latency_s": "latency", "loss_percent": "loss",
          "threads_per_worker": "threads per worker", "host_cpus": "cores"}


def value(record: dict[str, Any], field: str) -> Any:
    got = record.get(field)
    if field == "model_kwargs" and got is None:
        return {}
    if field == "bucket_cap_mb" and got is not None:
        return float(got)
    return got


def non_comm_s(record: dict[str, Any]) -> float:
    """A step's time outside exposed communication (compute + codec + optimizer): what a baseline
    contributes to a projected or predicted step."""
    return record["step_time_s"] - record["exposed_comm_s"]


def setup_of(record: dict[str, Any], fields: Sequence[str] = SETUP) -> dict[str, Any]:
    return {f: value(record, f) for f in fields}


def key(record: dict[str, Any], fields: Sequence[str] = SETUP) -> str:
    """A hashable identity over `fields`."""
    return json.dumps(setup_of(record, fields), sort_keys=True, default=str)


def differences(a: dict[str, Any], b: dict[str, Any], fields: Sequence[str] = SETUP) -> list[str]:
    """'threads per worker 2 vs 1' for each field where the two records differ."""
    return [f"{LABELS.get(f, f)} {show(f, value(a, f))} vs {show(f, value(b, f))}"
            for f in fields if key({f: value(a, f)}, [f]) != key({f: value(b, f)}, [f])]


def same(a: dict[str, Any], b: dict[str, Any], fields: Sequence[str] = SETUP) -> bool:
    return not differences(a, b, fields)


def matching(records: Iterable[dict[str, Any]], like: dict[str, Any], fields: Sequence[str]) -> list[dict[str, Any]]:
    """The records whose `fields` agree with `like`, oldest first."""
    want = key(like, fields)
    return [r for r in records if key(r, fields) == want]


def show(field: str, v: Any) -> str:
    if v is None:
        return "unset"
    if field == "bandwidth_bits_per_s":
        return f"{v / 1e6:g} Mbit/s"
    if field == "latency_s":
        return f"{v * 1e3:g} ms"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True) if v else "{}"
    return str(v)


def describe(record: dict[str, Any]) -> str:
    """The setup in a few words, for outputs that say which setup they used."""
    parts = [value(record, "cluster_kind")]
    if value(record, "cluster_address"):
        parts[0] += f" {value(record, 'cluster_address')}"
    if value(record, "bandwidth_bits_per_s"):
        parts.append(show("bandwidth_bits_per_s", value(record, "bandwidth_bits_per_s")) + " links")
    if value(record, "latency_s"):
        parts.append(show("latency_s", value(record, "latency_s")) + " latency")
    parts.append("gpu" if value(record, "use_gpu") else "cpu")
    if value(record, "compression") != "none":
        params = value(record, "compression_params")
        parts.append(f"compression={value(record, 'compression')}" + (f" {show('', params)}" if params else ""))
    if value(record, "threads_per_worker"):
        parts.append(f"{value(record, 'threads_per_worker')} thread(s)/worker")
    if value(record, "host"):
        parts.append(f"host {value(record, 'host')}")
    return ", ".join(str(p) for p in parts)
