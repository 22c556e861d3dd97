"""Measured vs predicted: each comm-only replay against the ring alpha-beta model with the busbw fit
measured at the same N over the same network (setup.NETWORK). A replay and a fit from different
setups never pair; `mismatch` says why nothing paired."""

from __future__ import annotations

from typing import Any, Iterable

from commbench.netmodel import Network, relative_error, step_comm_time
from commbench.results import setup


def fits_like(busbw_records: Iterable[dict[str, Any]], like: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The newest alpha-beta fit per N among busbw records measured over `like`'s network."""
    return {r["nodes"]: {**r["fit"], "setup": setup.describe(r)}
            for r in setup.matching(busbw_records, like, setup.NETWORK) if r.get("fit")}


def validation_rows(busbw_records: Iterable[dict[str, Any]], replays: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    busbw_records = list(busbw_records)
    newest: dict[tuple, dict[str, Any]] = {}
    for r in replays:  # later lines win
        newest[(r["model"], r["nodes"], setup.key(r, (*setup.NETWORK, *setup.BUCKETS)))] = r
    rows = []
    for (model, nodes, _), r in sorted(newest.items(), key=lambda kv: kv[0][:2]):
        fit = fits_like(busbw_records, r).get(nodes)
        if fit is None:
            continue
        predicted = step_comm_time("ring", r["bucket_bytes"], nodes, Network(fit["alpha_s"], fit["beta_s_per_byte"]))
        rows.append({"model": model, "nodes": nodes, "payload_bytes": r["payload_bytes"],
                     "measured_s": r["comm_time_s"], "predicted_s": predicted,
                     "error": relative_error(predicted, r["comm_time_s"]), "setup": setup.describe(r)})
    return rows


def mismatch(busbw_records: list[dict[str, Any]], replays: list[dict[str, Any]]) -> str:
    """Why no replay paired with a fit, in one line."""
    if not busbw_records or not replays:
        return "needs busbw fits and replays at the same N"
    replay, fit = replays[-1], busbw_records[-1]
    if setup.same(replay, fit, setup.NETWORK):
        return (f"no busbw fit at the replays' N (fits at N={sorted({r['nodes'] for r in busbw_records})}, "
                f"replays at N={sorted({r['nodes'] for r in replays})})")
    return ("the replays and the busbw fits were measured on different setups: "
            + "; ".join(setup.differences(replay, fit, setup.NETWORK)))
