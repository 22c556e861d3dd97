"""Rank 0's gathered figures -> the run's record: summary, per-step series, buckets, layers, wire bytes."""

from __future__ import annotations

from typing import Any

from commbench.framing import header_overhead, wire_overhead
from commbench.results.store import base_record
from commbench.comm.schemes import SCHEMES
from commbench.split import median_step
from commbench.stats import layer_bytes, per_step, ring_sent_bytes, summarize


def build_record(plan, gathered: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    ranks = sorted(gathered["ranks"], key=lambda r: r["rank"])
    summary = summarize(ranks, plan.nodes, plan.batch_size)
    rank0 = ranks[0]
    return {
        **base_record(plan),
        "status": "ok",
        "params": rank0["params"],
        **summary,
        "per_step": {
            **per_step(ranks),
            "payload_bytes": [s["payload"] for s in rank0["steps"]],  # equal on every rank (summarize checks)
        },
        "trace": trace(ranks, plan.compression),
        "step_timeline": median_step(ranks),
        **compression_figures(rank0["buckets"], summary["grad_bytes_per_step"], summary["sent_bytes_per_step"],
                              plan.nodes),
        # how tables and charts name the scheme: the results layer sits below comm/ and cannot ask its spec
        "compression_label": SCHEMES[plan.compression].label(plan.compression_params),
        "buckets": [{k: v for k, v in b.items() if k != "layers"} for b in rank0["buckets"]],
        "layer_bytes": layer_bytes(rank0["buckets"]),
        "attempts": rank0.get("attempt", 1),  # > 1: Ray restarted the run; these figures are the last attempt's
        "loss_first": rank0["loss_first"],
        "loss_last": rank0["loss_last"],
        "threads_per_worker": rank0["threads"],
        "host_cpus": rank0["host_cpus"],
        "device": rank0["device"],
        "worker_hosts": sorted({r["host"] for r in ranks}),
        "worker_pids": [r.get("pid") for r in ranks],  # the same processes in every cell of a worker group
        "worker_setup_s": max(r["setup_s"] for r in ranks),
        **wire_figures(ranks, summary["sent_bytes_per_step"]),
        **timings,
        # What Ray costs around the training loop: start-up of actors, workers and process group.
        "ray_overhead_s": timings["run_s"] - max(r["train_loop_s"] for r in ranks),
    }


def trace(ranks: list[dict[str, Any]], compression: str) -> dict[str, Any]:
    """The step trace (README, "The step trace"): per rank the medians of forward, backward compute,
    codec and optimizer time and each bucket's ready offset from backward start; the buckets in the
    order their hooks ran, with payload, dtype and collective."""
    rank0 = ranks[0]
    by_index = {b["index"]: b for b in rank0["buckets"]}
    order = rank0.get("hook_order") or sorted(by_index)
    collective = SCHEMES[compression].collective
    return {"buckets": [{"index": i, "payload_bytes": by_index[i]["payload_bytes"], "dtype": by_index[i]["dtype"],
                         "collective": collective} for i in order],
            "ranks": [{"rank": r["rank"], **r["trace"]} for r in ranks]}


def compression_figures(buckets: list[dict[str, Any]], payload: int, sent: int, nodes: int) -> dict[str, Any]:
    """The fp32 gradient bytes a step would hand to collectives uncompressed, and the ratios to what it
    handed over (payload) and to what each rank sent at this N: an all-gather scheme's bytes sent grow
    with N-1, a ring all-reduce's stay under 2x, so the second ratio shrinks as N grows."""
    fp32 = 4 * sum(b["numel"] for b in buckets)
    fp32_sent = ring_sent_bytes(fp32, nodes)
    return {"uncompressed_bytes_per_step": fp32, "compression_ratio": fp32 / payload if payload else None,
            "sent_compression_ratio": fp32_sent / sent if sent else None}


def wire_figures(ranks: list[dict[str, Any]], sent: int) -> dict[str, Any]:
    """Bytes each node's interface carried per step, next to the ring's payload (emulated clusters)."""
    wires = [r["wire"] for r in ranks if r.get("wire")]
    if not wires:
        return {}
    tx = [w["tx_per_step"] for w in wires]
    out = {"wire_bytes_per_step": tx, "wire_rx_bytes_per_step": [w["rx_per_step"] for w in wires],
           "wire_interface": wires[0]["interface"], "wire_mtu": wires[0]["mtu"],
           "wire_overhead_expected": wire_overhead(wires[0]["mtu"]),  # headers and ACKs (comm/wire.py)
           "wire_overhead_headers": header_overhead(wires[0]["mtu"])}
    if sent:
        out["wire_ratio"] = sum(tx) / len(tx) / sent
    return out
