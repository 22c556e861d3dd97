"""Measured vs predicted.

timeline_rows: per model, N and network, the three answers to "what does a step cost here" on one
setup identity: the timeline predicted from a nodes=1 trace (timeline.py), the trace replayed over the
real network with compute as sleep (replay mode=trace) and the fully trained run; with the errors
replay vs run and prediction vs replay.

validation_rows: each comm-only (back_to_back) replay against the ring alpha-beta model with the busbw
fit measured at the same N over the same network (setup.NETWORK). `mismatch` says why nothing paired.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from commbench.framing import link_overhead
from commbench.netmodel import Network, relative_error, step_comm_time
from commbench.results import setup


def fits_like(busbw_records: Iterable[dict[str, Any]], like: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The newest alpha-beta fit per N among busbw records measured over `like`'s network."""
    return {r["nodes"]: {**r["fit"], "setup": setup.describe(r)}
            for r in setup.matching(busbw_records, like, setup.NETWORK) if r.get("fit")}


def nearest_fit(fits: dict[int, dict[str, Any]], nodes: int) -> int:
    """The N whose fit stands for N: N itself, else the nearest measured below, else the smallest."""
    below = [n for n in fits if n <= nodes]
    return max(below) if below else min(fits)


def fit_network(fits: dict[int, dict[str, Any]], nodes: int) -> tuple[Network, str] | None:
    """The fit at N, else the nearest N below (else above): the link's alpha and beta, and which."""
    if not fits:
        return None
    n = nearest_fit(fits, nodes)
    fit = fits[n]
    return Network(fit["alpha_s"], fit["beta_s_per_byte"]), f"busbw fit N={n}"


def link_network(replay: dict[str, Any]) -> tuple[Network, str] | None:
    """No busbw fit: the emulated link's rate less what framing takes of its time (headers, ACKs and
    the 24 B per frame htb charges), its latency as alpha; loopback has no link to price."""
    bandwidth = replay.get("bandwidth_bits_per_s")
    if not bandwidth:
        return None
    return Network(replay.get("latency_s") or 0.0, 8 * link_overhead(1500) / bandwidth), "link rate less framing"


def link_label(record: dict[str, Any]) -> str:
    """'emulated 100 Mbit/s', 'local loopback'."""
    bandwidth = setup.value(record, "bandwidth_bits_per_s")
    where = setup.show("bandwidth_bits_per_s", bandwidth) if bandwidth else "loopback"
    return f"{setup.value(record, 'cluster_kind')} {where}"


def is_trace_replay(r: dict[str, Any]) -> bool:
    return r["mode"] == "trace"


def full_run(runs: list[dict[str, Any]], replay: dict[str, Any], trace: dict[str, Any]) -> dict[str, Any] | None:
    """The newest trained run at the replay's N over its network with the trace's compute identity."""
    same = [r for r in setup.matching(runs, replay, setup.NETWORK) if r["nodes"] == replay["nodes"]
            and r.get("status", "ok") == "ok" and setup.same(r, trace, setup.COMPUTE)]
    return same[-1] if same else None


def slowest_trace(run: dict[str, Any]):
    """The trace of the run's rank with the most compute: it sets the step, as in the run's split and
    a replay's E(N)."""
    from commbench.timeline import Trace

    return max((Trace.of_record(run, i) for i in range(len(run["trace"]["ranks"]))), key=lambda t: t.compute_s)


def channels_of(record: dict[str, Any]) -> int:
    """Collectives at once on the record's backend: NCCL's one stream on a GPU, gloo's threads on CPU."""
    from commbench.timeline import CHANNELS

    return CHANNELS["nccl" if record.get("use_gpu") else "gloo"]


def timeline_rows(runs: Iterable[dict[str, Any]], replays: Iterable[dict[str, Any]],
                  busbw_records: Iterable[dict[str, Any]],
                  link: Callable[[dict[str, Any]], tuple[Network, str] | None] = link_network) -> list[dict[str, Any]]:
    """One row per trace replay (the newest per model, N, network and compute scale). The prediction
    uses the busbw fit over the replay's network where there is one, else `link(replay)`."""
    from commbench.timeline import predict

    runs, busbw_records = list(runs), list(busbw_records)
    by_hash = {r.get("config_hash"): r for r in runs if r.get("trace")}
    newest: dict[tuple, dict[str, Any]] = {}
    for r in filter(is_trace_replay, replays):
        scale = (r.get("compute_scale"), r.get("compute_step_s"), r["trace_nodes"])
        newest[(r["model"], r["nodes"], setup.key(r, setup.NETWORK), scale)] = r
    rows = []
    for (model, nodes, _, _), r in sorted(newest.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1], kv[0][3][2])):
        trace_run = by_hash.get(r.get("trace_config_hash"))
        net = fit_network(fits_like(busbw_records, r), nodes) or link(r)
        if trace_run is None or net is None:
            continue
        trace = slowest_trace(trace_run)
        trace = trace.to_step(r["compute_step_s"]) if r.get("compute_step_s") else trace
        trace = trace.scaled(r.get("compute_scale") or 1.0)
        ring = predict(trace, nodes, net[0], channels_of(r))["ring"]
        unscaled = (r.get("compute_scale") or 1.0) == 1.0 and not r.get("compute_step_s")
        run = full_run(runs, r, trace_run) if unscaled else None
        traced_at = r["trace_nodes"]  # a trained run's trace (replay trace=run: at this N)
        row = {"model": model, "nodes": nodes, "link": link_label(r), "setup": setup.describe(r), "network": net[1],
               "trace": "nodes=1" if traced_at == 1 else f"N={traced_at} run" + ("'s own" if traced_at == nodes else ""),
               "payload_bytes": r["payload_bytes"], "trace_step_s": trace.compute_s,
               "predicted_step_s": ring["step_s"], "predicted_exposed_s": ring["exposed_comm_s"],
               "no_overlap_step_s": ring["no_overlap_step_s"],
               "replay_step_s": r["step_time_s"], "replay_exposed_s": r["exposed_comm_s"],
               "run_step_s": run["step_time_s"] if run else None,
               "run_exposed_s": run["exposed_comm_s"] if run else None,
               "predict_vs_replay": relative_error(ring["step_s"], r["step_time_s"]),
               "replay_vs_run": relative_error(r["step_time_s"], run["step_time_s"]) if run else None}
        rows.append(row)
    return rows


def validation_rows(busbw_records: Iterable[dict[str, Any]], replays: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    busbw_records = list(busbw_records)
    newest: dict[tuple, dict[str, Any]] = {}
    for r in replays:  # later lines win
        if not is_trace_replay(r):
            newest[(r["model"], r["nodes"], setup.key(r, (*setup.NETWORK, *setup.BUCKETS)))] = r
    rows = []
    for (model, nodes, _), r in sorted(newest.items(), key=lambda kv: kv[0][:2]):
        fit = fits_like(busbw_records, r).get(nodes)
        if fit is None:
            continue
        predicted = step_comm_time("ring", r["bucket_bytes"], nodes, Network(fit["alpha_s"], fit["beta_s_per_byte"]))
        rows.append({"model": model, "nodes": nodes, "payload_bytes": r["payload_bytes"],
                     "measured_s": r["step_time_s"], "predicted_s": predicted,
                     "error": relative_error(predicted, r["step_time_s"]), "setup": setup.describe(r)})
    return rows


def mismatch(busbw_records: list[dict[str, Any]], replays: list[dict[str, Any]]) -> str:
    """Why no replay paired with a fit, in one line."""
    if not replays:
        return "no replays: run `python -m commbench replay model=... nodes=2` (after a nodes=1 run of the model)"
    if any(map(is_trace_replay, replays)) and not busbw_records:
        return ("the trace replays crossed no link to price (loopback): run `python -m commbench busbw` on their "
                "setup for a fit, or replay on an emulated cluster (cluster=emulated network.bandwidth=100mbit)")
    if not busbw_records:
        return "needs busbw fits and back_to_back replays at the same N, or trace replays of a recorded nodes=1 run"
    replay, fit = replays[-1], busbw_records[-1]
    if setup.same(replay, fit, setup.NETWORK):
        return (f"no busbw fit at the replays' N (fits at N={sorted({r['nodes'] for r in busbw_records})}, "
                f"replays at N={sorted({r['nodes'] for r in replays})})")
    return ("the replays and the busbw fits were measured on different setups: "
            + "; ".join(setup.differences(replay, fit, setup.NETWORK)))
