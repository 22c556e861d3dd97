"""The results layer: records of every kind on disk, as a pandas DataFrame, and the joins between them.

    import commbench.results as results
    df = results.load("results")             # one row per record: runs, busbw sweeps, replays
    runs = df[df.kind == "run"]

Joins go through `setup` (the setup identity every record stores): scaling series, baselines,
trace lookups and validation pairs only ever combine records measured the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from commbench.results.setup import SETUP, setup_of
from commbench.results.store import FILES, append_record, read_records, records_of

__all__ = ["load", "export", "records", "append_record", "read_records", "FILES"]


def records(results_dir: str | os.PathLike, ok_only: bool = True) -> list[dict[str, Any]]:
    """Every record of every kind, each with `kind` and its setup identity filled in."""
    out = []
    for kind in FILES:
        for r in records_of(results_dir, kind, ok_only):
            out.append({**r, **setup_of(r)})
    return out


def load(results_dir: str | os.PathLike, ok_only: bool = False):
    """A DataFrame with one row per record (failed runs too unless ok_only), columns `kind`, the setup
    identity and every field any record has; nested fields (per_step, buckets, rows) stay objects."""
    import pandas as pd

    rows = records(results_dir, ok_only)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["kind", *SETUP])
    return frame


def _flat(frame):
    """Nested fields as JSON text, so CSV and Parquet hold them as one column each."""
    out = frame.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, (dict, list))).any():
            out[col] = out[col].map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
    return out


def export(results_dir: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Write every record as csv, parquet (pyarrow) or json (one object per line); (path, rows)."""
    frame = load(results_dir)
    path = Path(out) if out else Path(results_dir).expanduser().resolve() / "export" / f"results.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        _flat(frame).to_csv(path, index=False)
    elif fmt == "parquet":
        _flat(frame).to_parquet(path, index=False, engine="pyarrow")
    elif fmt == "json":
        frame.to_json(path, orient="records", lines=True)
    else:
        raise ValueError(f"format must be one of csv, parquet, json, got {fmt!r}")
    return path, len(frame)
