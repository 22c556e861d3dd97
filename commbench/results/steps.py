"""One step of a run as spans on lanes: measured (the record's median step, per rank, from its clock
points) beside predicted (the timeline simulated from the rank's trace over the run's network), on
one time axis from the step's start. What the Gantt chart and the Chrome trace are drawn from.

A span is (lane, name, start, end) in seconds; an instant (a bucket becoming ready) has start == end.
"""

from __future__ import annotations

from typing import Any, Iterable

from commbench.results.validation import fit_network, fits_like, link_network
from commbench.timeline import CHANNELS, Trace, collective_spans
from commbench.netmodel import allreduce_time

Span = tuple[str, str, float, float]


def measured_spans(record: dict[str, Any]) -> list[Span]:
    """Per rank: forward (buffer broadcasts in it), backward, each bucket's ready instant and codec,
    each collective, the wait for outstanding collectives at backward's end, the optimizer."""
    spans: list[Span] = []
    for r in record["step_timeline"]["ranks"]:
        lane, comm = f"measured rank {r['rank']}", f"measured rank {r['rank']} comm"
        b0, b1, end = r["backward_start"], r["backward_end"], r["end"]
        last_issue = max((b[1] for b in r["buckets"]), default=b1)
        spans += [(lane, "forward", 0.0, b0), (lane, "backward", b0, max(b0, last_issue)),
                  (lane, "exposed comm", last_issue, b1), (lane, "optimizer", b1, end)]
        spans += [(comm, "buffer broadcast", a, b) for a, b in r["buffers"]]
        for i, (ready, issued, final) in enumerate(r["buckets"]):
            spans += [(lane, f"bucket {i} ready", ready, ready), (lane, f"codec {i}", ready, issued)]
        spans += [(comm, f"collective {i}", a, b) for i, (a, b) in enumerate(r["collectives"])]
    return [s for s in spans if s[3] >= s[2]]


def predicted_spans(trace: Trace, nodes: int, network, channels: int, lane: str = "predicted") -> list[Span]:
    """The timeline (timeline.simulate's) of `trace` at N over `network`, as spans."""
    cost = [allreduce_time("ring", n, nodes, network) for n in trace.buckets]
    base = [allreduce_time("ring", 0, nodes, network)] * len(cost)
    runs = collective_spans(trace.ready_s, base, [c - b for c, b in zip(cost, base)], channels)
    f, compute_end = trace.forward_s, trace.backward_s + trace.codec_s
    last = max([end for _, end in runs] + [compute_end])
    spans = [(lane, "forward", 0.0, f), (lane, "backward", f, f + trace.backward_s),
             (lane, "codec", f + trace.backward_s, f + compute_end),
             (lane, "exposed comm", f + compute_end, f + last),
             (lane, "optimizer", f + last, f + last + trace.optimizer_s)]
    spans += [(lane, f"bucket {i} ready", f + r, f + r) for i, r in enumerate(trace.ready_s)]
    spans += [(f"{lane} comm", f"collective {i}", f + a, f + b) for i, (a, b) in enumerate(runs)]
    return [s for s in spans if s[3] > s[2] or "ready" in s[1]]


def step_spans(record: dict[str, Any], busbw_records: Iterable[dict[str, Any]] = ()) -> tuple[list[Span], str]:
    """The record's median step measured, and predicted from its own trace (the rank with the most
    compute) over the busbw fit of its network, else its link less framing; and which network, or why
    there is no prediction (loopback has no link to price)."""
    spans = measured_spans(record)
    if record["nodes"] < 2:
        return spans, "one rank: nothing to predict"
    net = fit_network(fits_like(list(busbw_records), record), record["nodes"]) or link_network(record)
    if net is None:
        return spans, "no prediction: a loopback run crosses no link to price"
    trace = max((Trace.of_record(record, i) for i in range(len(record["trace"]["ranks"]))), key=lambda t: t.compute_s)
    channels = CHANNELS["nccl" if record.get("use_gpu") else "gloo"]
    return spans + predicted_spans(trace, record["nodes"], net[0], channels), f"predicted over the {net[1]}"
