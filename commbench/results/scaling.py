"""Scaling efficiency from records: E(N) = throughput(N) / (N x throughput(1)), per model, with the step
split into compute, exposed communication and overlap, the regime it was measured in, and the
efficiency projected from communication-only replays (no CPU contention from training)."""

from __future__ import annotations

from typing import Any, Iterable

from commbench.netmodel import efficiency
from commbench.results import setup


def series_key(record: dict[str, Any]) -> str:
    """Runs that differ only in `nodes` form one scaling series: same model, same setup identity
    (threads per worker included, so a baseline with other threads never counts)."""
    return setup.key(record, setup.SERIES)


def latest_per_nodes(records: Iterable[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    series: dict[str, dict[int, dict[str, Any]]] = {}
    for r in records:
        if r.get("status") == "ok" and "throughput" in r:
            series.setdefault(series_key(r), {})[r["nodes"]] = r  # later lines win
    return series


def regime(record: dict[str, Any]) -> str:
    """Where the number comes from: workers sharing a machine's cores measure contention too."""
    hosts = max(1, len(record.get("worker_hosts") or [1]))
    per_host = -(-record["nodes"] // hosts)
    text = f"{per_host}/host" + (f" x {hosts} hosts" if hosts > 1 else "")
    cores = record.get("host_cpus")
    if cores:
        text += f", {cores} cores" + (", shared" if per_host * record.get("threads_per_worker", 1) > cores else "")
    if record.get("bandwidth_bits_per_s"):
        text += f", {record['bandwidth_bits_per_s'] / 1e6:g} Mbit/s links"
    return text


REPLAY_MATCH = (*setup.NETWORK, *setup.BUCKETS)  # a replay stands for a run over the same network and buckets


def replay_time(replays: list[dict[str, Any]], run: dict[str, Any]) -> float | None:
    """The newest replay of this run's buckets at its N over its network, if any."""
    same = [r for r in setup.matching(replays, run, REPLAY_MATCH) if r["nodes"] == run["nodes"]]
    return same[-1]["comm_time_s"] if same else None


def scaling_rows(records: Iterable[dict[str, Any]], replays: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    replays = list(replays)
    rows = []
    for by_nodes in latest_per_nodes(records).values():
        base = by_nodes.get(1)
        for nodes in sorted(by_nodes):
            r = by_nodes[nodes]
            comm = replay_time(replays, r)
            rows.append({
                "model": r["model"],
                "nodes": nodes,
                "throughput": r["throughput"],
                "efficiency": efficiency_against(r, base),
                "step_time_s": r["step_time_s"],
                "compute_time_s": r["compute_time_s"],
                "exposed_comm_s": r["comm_time_s"],
                # Collective time hidden behind backward: how long the all-reduces ran minus the exposed part.
                "overlap_s": max(0.0, r.get("comm_span_s", 0.0) - r["comm_time_s"]),
                "grad_bytes_per_step": r["grad_bytes_per_step"],
                "sent_bytes_per_step": r["sent_bytes_per_step"],
                "replay_comm_s": comm,
                "projected_efficiency": efficiency(base["compute_time_s"], comm) if base and comm is not None else None,
                "regime": regime(r),
            })
    return rows


def efficiency_of(record: dict[str, Any], earlier: Iterable[dict[str, Any]]) -> float | None:
    """E(N) of one record against the newest nodes=1 run of its series (itself, at N=1); None
    without a baseline."""
    if record["nodes"] == 1:
        return 1.0
    return efficiency_against(record, latest_per_nodes(earlier).get(series_key(record), {}).get(1))


def efficiency_against(record: dict[str, Any], base: dict[str, Any] | None) -> float | None:
    """E(N) = throughput(N) / (N x throughput(1)) with `base` the nodes=1 run; None without one."""
    return record["throughput"] / (record["nodes"] * base["throughput"]) if base else None
