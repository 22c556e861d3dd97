"""One step as a picture and as a Chrome trace (results/steps.py, sinks/gantt.py): the trace file read
back has the record's clock points, and the predicted lane is the hand-computed timeline."""

from __future__ import annotations

import json

import pytest

from commbench.framing import link_overhead
from commbench.sinks.gantt import chrome_trace, plot_step
from commbench.results.steps import step_spans

MS = 1e-3
# rank 0: forward 0-10 ms, backward from 10; bucket 0 ready at 30, issued at 31, its all-reduce 31-50;
# bucket 1 ready at 60, issued 62, all-reduce 62-80; backward returns at 85; optimizer to 95.
EVENTS = {"backward_start": 10 * MS, "backward_end": 85 * MS, "end": 95 * MS,
          "buckets": [[30 * MS, 31 * MS, 50 * MS], [60 * MS, 62 * MS, 84 * MS]],
          "collectives": [[31 * MS, 50 * MS], [62 * MS, 80 * MS]], "buffers": [[4 * MS, 6 * MS]]}
RECORD = {"model": "resnet50", "nodes": 2, "config_hash": "abc", "cluster_kind": "emulated",
          "bandwidth_bits_per_s": 100e6, "latency_s": None,
          "step_timeline": {"step": 1, "step_s": 95 * MS, "ranks": [{"rank": 0, **EVENTS}, {"rank": 1, **EVENTS}]},
          "trace": {"buckets": [{"index": 0, "payload_bytes": 1_000_000}],
                    "ranks": [{"rank": r, "forward_s": 0.01, "backward_s": 0.05, "codec_s": 0.0, "optimizer_s": 0.01,
                               "ready_offsets_s": [0.05]} for r in (0, 1)]}}


def test_the_chrome_trace_reads_back_as_the_record_and_the_hand_computed_timeline(tmp_path):
    spans, predicted = step_spans(RECORD)
    assert predicted == "predicted over the link rate less framing"
    path = chrome_trace(spans, {"config_hash": "abc"}, tmp_path / "step.trace.json")
    trace = json.loads(path.read_text())
    assert trace["otherData"] == {"config_hash": "abc"} and trace["displayTimeUnit"] == "ms"
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
    spans_of = {}
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            spans_of[(names[e["tid"]], e["name"])] = (e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6)
    # measured: the record's clock points, per rank
    for r in (0, 1):
        lane = f"measured rank {r}"
        assert spans_of[(lane, "forward")] == pytest.approx((0, 10 * MS))
        # split.rank_split's parts: 21 ms exposed (test_split's hand case), 2 of them the buffer
        # broadcast on the comm lane, so 19 ms of wait end backward; compute and codec before it
        assert spans_of[(lane, "backward")] == pytest.approx((10 * MS, 66 * MS))
        assert spans_of[(lane, "exposed comm")] == pytest.approx((66 * MS, 85 * MS))
        assert spans_of[(lane, "optimizer")] == pytest.approx((85 * MS, 95 * MS))
        assert spans_of[(lane, "codec 1")] == pytest.approx((60 * MS, 62 * MS))
        assert spans_of[(f"{lane} comm", "collective 1")] == pytest.approx((62 * MS, 80 * MS))
        assert spans_of[(f"{lane} comm", "buffer broadcast")] == pytest.approx((4 * MS, 6 * MS))
    ready = [e for e in trace["traceEvents"] if e["ph"] == "i" and names[e["tid"]] == "measured rank 0"]
    assert [e["ts"] / 1e6 for e in ready] == pytest.approx([30 * MS, 60 * MS])
    # predicted: the one 1 MB bucket ready when backward ends (10 + 50 ms), its N=2 ring over
    # 100 Mbit/s less framing (n beta), then the optimizer
    cost = 1_000_000 * 8 * link_overhead(1500) / 100e6
    assert spans_of[("predicted comm", "collective 0")] == pytest.approx((0.06, 0.06 + cost))
    assert spans_of[("predicted", "exposed comm")] == pytest.approx((0.06, 0.06 + cost))
    assert spans_of[("predicted", "optimizer")] == pytest.approx((0.06 + cost, 0.07 + cost))


def test_a_loopback_run_has_no_prediction_and_still_a_picture(tmp_path):
    spans, predicted = step_spans({**RECORD, "cluster_kind": "local", "bandwidth_bits_per_s": None})
    assert predicted.startswith("no prediction") and {lane for lane, *_ in spans} == {
        "measured rank 0", "measured rank 0 comm", "measured rank 1", "measured rank 1 comm"}
    png = plot_step(spans, "a step", tmp_path / "step.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_draws_the_step_of_the_run_at_the_largest_n(tmp_path):
    from commbench.results.store import append_record
    from commbench.sinks.report import write_report
    from tests.test_report import run

    append_record(tmp_path / "runs.jsonl", run("alexnet", 1, 0.0))
    append_record(tmp_path / "runs.jsonl", {**run("alexnet", 2, 0.01), **RECORD, "model": "alexnet"})
    paths = {p.name: p for p in write_report(tmp_path)}
    assert {"step_timeline.png", "step_timeline.trace.json"} <= set(paths)
    trace = json.loads(paths["step_timeline.trace.json"].read_text())
    assert trace["otherData"]["config_hash"] == "abc" and trace["otherData"]["nodes"] == 2


def test_overlapping_collectives_each_get_a_lane_free_when_they_start():
    from commbench.results.steps import sublanes

    got = sublanes("comm", [("b", 1.0, 3.0), ("a", 0.0, 2.0), ("c", 2.5, 4.0)])
    assert got == [("comm", "a", 0.0, 2.0), ("comm 2", "b", 1.0, 3.0), ("comm", "c", 2.5, 4.0)]
