"""`commbench compare`: the question in one picture. Its predictions are predict's (the same timeline
and terms, the same numbers at one N), its answer line names AlexNet and SqueezeNet, its charts are
written, and measured points come only from records of the same link rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from commbench.results.store import append_record
from tests.test_scaling import run

REPO = Path(__file__).resolve().parents[1]


def commbench(*args):
    return subprocess.run([sys.executable, "-m", "commbench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_compare_predicts_what_predict_does_and_answers_in_one_line(tmp_path):
    out = commbench("compare", "models=alexnet,squeezenet", "nodes=16", "network.bandwidth=10gbit",
                    "network.latency=5us", f"results_dir={tmp_path}", "format=json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    rows = {r["model"]: r for r in got["models"]}
    assert [str(n) for n in (1, 2, 1024)] <= list(rows["alexnet"]["efficiency"])
    squeeze, alex = rows["squeezenet"]["efficiency"]["16"], rows["alexnet"]["efficiency"]["16"]
    assert got["answer"] == f"at N=16 on 10 Gbit/s, 5 us: squeezenet {squeeze:.0%} efficient, alexnet {alex:.0%}"
    assert squeeze > alex  # 4.99 MB against 244 MB per step over the same link
    # the same prediction through predict, its compute given as compare computed it
    compute = rows["squeezenet"]["compute_s"]
    pred = commbench("predict", "model=squeezenet", "nodes=16", "network.bandwidth=10gbit", "network.latency=5us",
                     f"compute_s={compute!r}", f"results_dir={tmp_path}", "format=json")
    assert pred.returncode == 0, pred.stderr
    assert json.loads(pred.stdout)["at_nodes"]["ring"]["efficiency"] == pytest.approx(squeeze)
    for chart in got["charts"]:
        assert Path(chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(chart).parent == tmp_path / "report"
    table = commbench("compare", "models=alexnet,squeezenet", "nodes=16", f"results_dir={tmp_path}")
    assert table.stdout.splitlines()[0] == f"at N=16 on 10 Gbit/s, 5 us: squeezenet {squeeze:.0%} efficient, alexnet {alex:.0%}"


def test_measured_points_come_from_records_of_the_same_link(tmp_path):
    trace = {"buckets": [{"index": 0, "payload_bytes": 4_993_696}],
             "ranks": [{"rank": 0, "forward_s": 0.02, "backward_s": 0.03, "codec_s": 0.0, "optimizer_s": 0.001,
                        "ready_offsets_s": [0.03]}]}
    base = {**run("squeezenet", 1, 150.0, 0.051, 0.05, 0.0, 0.0), "compression_params": {}, "bucket_cap_mb": 25.0,
            "buckets": [{"index": 0, "payload_bytes": 4_993_696, "params": 52}]}
    append_record(tmp_path / "runs.jsonl", {**base, "trace": trace, "config_hash": "t1"})
    for rate, e in ((100e6, 0.2), (200e6, 0.3)):
        append_record(tmp_path / "replay.jsonl", {**base, "kind": "replay", "mode": "trace", "nodes": 2,
                                                  "cluster_kind": "emulated", "bandwidth_bits_per_s": rate,
                                                  "projected_efficiency": e})
    # trained runs on emulated 100 Mbit/s links: a nodes=1 baseline and N=2, E = 50 / (2 x 40)
    emulated = {**base, "cluster_kind": "emulated", "bandwidth_bits_per_s": 100e6}
    append_record(tmp_path / "runs.jsonl", {**emulated, "throughput": 40.0})
    append_record(tmp_path / "runs.jsonl", {**emulated, "nodes": 2, "throughput": 50.0})
    out = commbench("compare", "models=squeezenet", "compute=trace", "network.bandwidth=100mbit",
                    "network.latency=0", f"results_dir={tmp_path}", "format=json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["measured"] == [{"model": "squeezenet", "nodes": 2, "efficiency": 50 / 80, "how": "trained run"},
                               {"model": "squeezenet", "nodes": 2, "efficiency": 0.2, "how": "trace replay"}]
    # with compute from FLOPs (a V100's) this machine's points compare with nothing drawn: none
    flops = commbench("compare", "models=squeezenet", "network.bandwidth=100mbit", "network.latency=0",
                      f"results_dir={tmp_path}", "format=json")
    assert json.loads(flops.stdout)["measured"] == []
    assert got["inputs"]["backend"] == "gloo" and got["models"][0]["compute_s"] == pytest.approx(0.051)
    # a model without a nodes=1 trace is left out, and said so; none at all is one line and exit 2
    none = commbench("compare", "models=alexnet", "compute=trace", f"results_dir={tmp_path / 'empty'}")
    assert none.returncode == 2 and none.stderr.count("\n") == 1 and "needs nodes=1 runs of alexnet" in none.stderr
