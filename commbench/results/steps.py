"""One step of a run as spans on lanes: measured (the record's median step, per rank, from its clock
points) beside predicted (the timeline simulated from the rank's trace over the run's network), on
one time axis from the step's start. What the Gantt chart and the Chrome trace are drawn from.

A span is (lane, name, start, end) in seconds; an instant (a bucket becoming ready) has start == end.
"""

from __future__ import annotations

from typing import Any, Iterable

from commbench.netmodel import allreduce_time
from commbench.results.validation import channels_of, fit_network, fits_like, link_network, slowest_trace
from commbench.split import rank_split
from commbench.timeline import Trace, simulate

Span = tuple[str, str, float, float]


def measured_spans(record: dict[str, Any]) -> list[Span]:
    """Per rank, with split.rank_split's own parts: forward, backward compute, the exposed wait at
    backward's end (the rank's exposed comm less its buffer broadcasts, which its comm lane shows), the
    optimizer; each bucket's ready instant and codec; each collective on a comm lane of its own while
    another runs (gloo runs two at once)."""
    spans: list[Span] = []
    communicated = record["nodes"] > 1
    for r in record["step_timeline"]["ranks"]:
        lane, comm = f"measured rank {r['rank']}", f"measured rank {r['rank']} comm"
        b0, b1, end = r["backward_start"], r["backward_end"], r["end"]
        split = rank_split(b0, b1, end, r["buffers"], r["buckets"], r["collectives"], communicated)
        wait = max(0.0, split["wait"] - split["buffer"])
        spans += [(lane, "forward", 0.0, b0), (lane, "backward", b0, b1 - wait), (lane, "exposed comm", b1 - wait, b1),
                  (lane, "optimizer", b1, end)]
        for i, (ready, issued, _final) in enumerate(r["buckets"]):
            spans += [(lane, f"bucket {i} ready", ready, ready), (lane, f"codec {i}", ready, issued)]
        spans += sublanes(comm, [("buffer broadcast", a, b) for a, b in r["buffers"]]
                          + [(f"collective {i}", a, b) for i, (a, b) in enumerate(r["collectives"])])
    return [s for s in spans if s[3] >= s[2]]


def sublanes(lane: str, spans: list[tuple[str, float, float]]) -> list[Span]:
    """Spans that may overlap, each on the first of lane, 'lane 2', ... that is free when it starts: on
    one lane spans then follow one another (what a trace viewer's thread expects)."""
    free: list[float] = []  # when each sub-lane's last span ends
    out = []
    for name, a, b in sorted(spans, key=lambda s: s[1]):
        k = next((k for k, t in enumerate(free) if t <= a), len(free))
        free[k:k + 1] = [b]
        out.append((lane if k == 0 else f"{lane} {k + 1}", name, a, b))
    return out


def predicted_spans(trace: Trace, nodes: int, network, channels: int, lane: str = "predicted") -> list[Span]:
    """The timeline timeline.simulate computes for `trace` at N over `network` (ring), as spans."""
    sim = simulate(trace, lambda n: allreduce_time("ring", n, nodes, network), channels)
    f, compute_end = trace.forward_s, trace.backward_s + trace.codec_s
    spans = [(lane, "forward", 0.0, f), (lane, "backward", f, f + trace.backward_s),
             (lane, "codec", f + trace.backward_s, f + compute_end),
             (lane, "exposed comm", f + compute_end, f + compute_end + sim["exposed_comm_s"]),
             (lane, "optimizer", f + compute_end + sim["exposed_comm_s"], f + sim["step_s"] - trace.forward_s)]
    spans += [(lane, f"bucket {i} ready", f + r, f + r) for i, r in enumerate(trace.ready_s)]
    spans += sublanes(f"{lane} comm", [(f"collective {i}", f + a, f + b) for i, (a, b) in enumerate(sim["spans"])])
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
    return (spans + predicted_spans(slowest_trace(record), record["nodes"], net[0], channels_of(record)),
            f"predicted over the {net[1]}")
