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


def cpu_bound(record: dict[str, Any]) -> bool:
    """More torch threads on a machine than it has cores: the workers measure contention."""
    hosts = max(1, len(record.get("worker_hosts") or [1]))
    cores = record.get("host_cpus")
    threads = record.get("threads_per_worker") or 1
    return bool(cores) and -(-record["nodes"] // hosts) * threads > cores


def network_measured(record: dict[str, Any]) -> bool:
    """Did the collectives cross a network (emulated links or several hosts), not loopback?"""
    return setup.value(record, "cluster_kind") == "emulated" or len(record.get("worker_hosts") or []) > 1


def series_label(record: dict[str, Any]) -> str:
    """The model, and what sets its series apart where that is not the default: scheme and its main
    parameter, link, threads, batch."""
    from commbench.results.compression import scheme_label

    parts = [record["model"]]
    if setup.value(record, "compression") != "none":
        parts.append(scheme_label(record))
    if record.get("bandwidth_bits_per_s"):
        parts.append(f"{record['bandwidth_bits_per_s'] / 1e6:g} Mbit/s")
    if (record.get("threads_per_worker") or 1) != 1:
        parts.append(f"{record['threads_per_worker']} threads")
    if record.get("batch_size") not in (None, 8):
        parts.append(f"batch {record['batch_size']}")
    return " ".join(parts)


def regime(record: dict[str, Any]) -> str:
    """What a measured E(N) stands for, in plain words: the first thing an output shows."""
    n, cores = record["nodes"], record.get("host_cpus")
    hosts = max(1, len(record.get("worker_hosts") or [1]))
    on = f"{cores} cores" if cores else "one machine"
    if setup.value(record, "cluster_kind") == "emulated":
        text = f"{n} emulated node{'s' * (n > 1)} sharing {on}"
    elif hosts > 1:
        text = f"{n} workers on {hosts} hosts"
    else:
        text = f"{n} worker{'s' * (n > 1)} on {on}"
    if record.get("bandwidth_bits_per_s"):
        text += f", {record['bandwidth_bits_per_s'] / 1e6:g} Mbit/s links"
    elif hosts == 1 and setup.value(record, "cluster_kind") == "local":
        text += " over loopback"
    if cpu_bound(record):
        return text + ": CPU-bound, not a network measurement"
    if not network_measured(record) and n > 1:
        return text + ": no network crossed"
    return text


REPLAY_MATCH = (*setup.NETWORK, *setup.BUCKETS)  # a replay stands for a run over the same network and buckets


def replay_time(replays: list[dict[str, Any]], run: dict[str, Any]) -> float | None:
    """The step (all comm) of the newest back-to-back replay of this run's buckets at its N over its
    network, if any (a trace replay's step depends on the compute it slept: `validate` compares those)."""
    same = [r for r in setup.matching(replays, run, REPLAY_MATCH) if r["nodes"] == run["nodes"]
            and r["mode"] == "back_to_back"]
    return same[-1]["step_time_s"] if same else None


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
                "exposed_comm_s": r["exposed_comm_s"],
                "codec_time_s": r.get("codec_time_s"),
                "optimizer_time_s": r.get("optimizer_time_s"),
                "imbalance_s": r.get("imbalance_s"),
                # Collective time hidden behind compute: busy time of the collectives minus the exposed part.
                "overlap_s": r.get("overlap_s"),
                "grad_bytes_per_step": r["grad_bytes_per_step"],
                "sent_bytes_per_step": r["sent_bytes_per_step"],
                "replay_comm_s": comm,
                "projected_efficiency": efficiency(setup.non_comm_s(base), comm) if base and comm is not None else None,
                "series": series_label(r),
                "series_key": series_key(r),
                "regime": regime(r),
                "network_measured": network_measured(r) and not cpu_bound(r),
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


def headline_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The rows the efficiency chart shows, and its title: series measured over a network (emulated or
    several hosts, not CPU-bound) where there are any, else all, said to be no network measurement."""
    over_network = {r["series_key"] for r in rows if r["network_measured"]}
    if over_network:
        return [r for r in rows if r["series_key"] in over_network], "Scaling efficiency over a network"
    if any("CPU-bound" in r["regime"] for r in rows):
        return rows, "Scaling efficiency on one machine: CPU-bound, not a network measurement"
    return rows, "Scaling efficiency on one machine over loopback: no network crossed"
