"""Scaling efficiency arithmetic over records, and the analysis subcommands on records made here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from commbench.models import MODELS

from commbench.results.schema import SCHEMA_VERSION
from commbench.results.setup import DEFAULTS
from commbench.results.store import append_record
from commbench.results.scaling import regime, scaling_rows

REPO = Path(__file__).resolve().parents[1]


def run(model, nodes, thr, step, compute, comm, span, **extra):
    """A current run record (schema 2, the whole setup identity; what analysis reads back)."""
    return {"kind": "run", "schema": SCHEMA_VERSION, **DEFAULTS, "model": model, "model_kwargs": {"num_classes": 1000}, "nodes": nodes, "status": "ok",
            "throughput": thr, "step_time_s": step, "compute_time_s": compute, "exposed_comm_s": comm,
            "comm_busy_s": span, "overlap_s": max(0.0, span - comm), "grad_bytes_per_step": 400, "sent_bytes_per_step": 0 if nodes == 1 else 700,
            "batch_size": 8, "image_size": 64, "compression": "none", "cluster_kind": "local",
            "worker_hosts": ["vm"], "host_cpus": 2, "threads_per_worker": 1, **extra}


RUNS = [run("alexnet", 1, 100.0, 0.08, 0.08, 0.0, 0.0), run("alexnet", 2, 150.0, 0.106, 0.08, 0.02, 0.05),
        run("alexnet", 4, 200.0, 0.16, 0.1, 0.06, 0.07)]


def test_efficiency_is_throughput_over_n_times_baseline():
    rows = {r["nodes"]: r for r in scaling_rows(RUNS)}
    assert rows[1]["efficiency"] == 1.0
    assert rows[2]["efficiency"] == pytest.approx(150 / (2 * 100))
    assert rows[4]["efficiency"] == pytest.approx(200 / (4 * 100))
    assert rows[2]["overlap_s"] == pytest.approx(0.03) and rows[4]["overlap_s"] == pytest.approx(0.01)


def test_no_baseline_no_efficiency_and_later_runs_win():
    rows = scaling_rows([RUNS[1], {**RUNS[1], "throughput": 120.0}])
    assert len(rows) == 1 and rows[0]["efficiency"] is None and rows[0]["throughput"] == 120.0


def test_projected_efficiency_from_replay():
    replay = {"kind": "replay", "schema": SCHEMA_VERSION, **DEFAULTS, "model": "alexnet",
              "model_kwargs": {"num_classes": 1000}, "nodes": 4, "mode": "back_to_back", "step_time_s": 0.02}
    rows = {r["nodes"]: r for r in scaling_rows(RUNS, [replay])}
    assert rows[4]["replay_comm_s"] == 0.02
    assert rows[4]["projected_efficiency"] == pytest.approx(0.08 / (0.08 + 0.02))
    assert rows[2]["projected_efficiency"] is None


def test_regime_says_when_workers_share_cores():
    assert regime(RUNS[2]) == "4 workers on 2 cores over loopback: CPU-bound, not a network measurement"
    assert regime(RUNS[1]) == "2 workers on 2 cores over loopback: no network crossed"
    assert regime(RUNS[0]) == "1 worker on 2 cores over loopback"
    assert regime({**RUNS[2], "worker_hosts": ["a", "b", "c", "d"]}) == "4 workers on 4 hosts"
    emulated = {**RUNS[1], "cluster_kind": "emulated", "bandwidth_bits_per_s": 1e8}
    assert regime(emulated) == "2 emulated nodes sharing 2 cores, 100 Mbit/s links"
    assert regime({**emulated, "nodes": 4}).endswith("100 Mbit/s links: CPU-bound, not a network measurement")


def commbench_json(*args):
    out = subprocess.run([sys.executable, "-m", "commbench", *args, "format=json"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_scaling_and_layers_commands(tmp_path):
    for r in RUNS:
        append_record(tmp_path / "runs.jsonl", {**r, "layer_bytes": {"features.0": 100, "classifier.1": 300}})
    rows = commbench_json("scaling", f"results_dir={tmp_path}")
    assert [(r["nodes"], r["efficiency"]) for r in rows] == [(1, 1.0), (2, 0.75), (4, 0.5)]
    layers = commbench_json("layers", "model=alexnet", f"results_dir={tmp_path}")
    assert layers == [{"layer": "classifier.1", "grad_bytes": 300, "share": 0.75},
                      {"layer": "features.0", "grad_bytes": 100, "share": 0.25}]


def test_predict_matches_hand_computed_ring(tmp_path):
    out = commbench_json("predict", "model=squeezenet", "nodes=8", "network.bandwidth=1gbit",
                         "network.latency=10us", "compute_s=0.05", f"results_dir={tmp_path}",
                         "overhead.ddp_per_tensor_s=0", "overhead.interference=0", "overhead.jitter=0")
    n = 4 * 1_248_424  # one 5 MB bucket
    ring = 2 * 7 * 10e-6 + 2 * 7 / 8 * n * 8 / 1e9
    assert out["buckets"] == [n] and out["trace_source"].startswith("DDP layout")
    assert out["at_nodes"]["ring"]["comm_s"] == pytest.approx(ring)
    assert out["at_nodes"]["ring"]["efficiency"] == pytest.approx(0.05 / (0.05 + ring))
    assert out["at_nodes"]["ps"]["comm_s"] == pytest.approx(2 * 8 * (10e-6 + n * 8 / 1e9))
    # no trace: the default profile; its one bucket is ready when backward ends, nothing overlaps
    assert out["at_nodes"]["ring"]["step_s"] == pytest.approx(0.05 + ring) == out["at_nodes"]["ring"]["no_overlap_step_s"]
    assert set(out["overheads"]["source"].values()) == {"given"}


def test_predict_prices_the_nccl_defaults_and_says_so(tmp_path):
    """The same prediction with the backend's defaults: DDP per gradient tensor (squeezenet: 52), the
    interference over backward from its one bucket's ready time (the end: none), the stragglers."""
    from commbench.overheads import NCCL, expected_max

    out = commbench_json("predict", "model=squeezenet", "nodes=8", "network.bandwidth=1gbit",
                         "network.latency=10us", "compute_s=0.05", f"results_dir={tmp_path}")
    ring = out["at_nodes"]["ring"]
    assert out["overheads"]["tensors"] == 52 and out["overheads"]["source"]["jitter"] == "nccl default"
    assert ring["ddp_s"] == pytest.approx(52 * NCCL.ddp_per_tensor_s)
    assert ring["interference_s"] == 0.0
    assert ring["straggler_s"] == pytest.approx(NCCL.jitter * 0.05 * expected_max(8))
    plain = 0.05 + ring["comm_s"]
    assert ring["step_s"] == pytest.approx(plain + ring["ddp_s"] + ring["straggler_s"])
    assert ring["efficiency"] == pytest.approx(0.05 / ring["step_s"])
    assert [row["nodes"] for row in out["by_nodes"]] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    ranked = [r["model"] for r in out["ranking"]]
    assert len(ranked) == len(MODELS) and ranked[-2:] == ["alexnet", "vgg16"] and ranked[0] == "squeezenext"


def test_validate_compares_fit_with_replay(tmp_path):
    append_record(tmp_path / "busbw.jsonl", {"kind": "busbw", "nodes": 2,
                                             "fit": {"alpha_s": 1e-4, "beta_s_per_byte": 1e-9}})
    append_record(tmp_path / "replay.jsonl", {"model": "squeezenet", "nodes": 2, "bucket_bytes": [1_000_000],
                                              "payload_bytes": 1_000_000, "mode": "back_to_back", "step_time_s": 0.002})
    [row] = commbench_json("validate", f"results_dir={tmp_path}")
    predicted = 2 * 1 * 1e-4 + 2 * 1 / 2 * 1_000_000 * 1e-9
    assert row["predicted_s"] == pytest.approx(predicted)
    assert row["error"] == pytest.approx((predicted - 0.002) / 0.002)


@pytest.mark.parametrize("args, message", [
    (["predict", "model=vgg"], "unknown model 'vgg'"),
    (["predict", "network.bandwidth=10gbps", "network.latency=5us"], "network.bandwidth: '10gbps' is ambiguous"),
    (["predict", "network.bandwidth=10gbit"], "predict needs network.bandwidth and network.latency"),
    (["predict", "nodes=0", "network.bandwidth=10gbit", "network.latency=5us"], "nodes must be an integer >= 1"),
    (["predict", "overhead.jitter=-0.1"], "overhead.jitter must be a number >= 0, got '-0.1'"),
    (["validate", "published", "formt=json"], "unknown option 'formt' for validate published (did you mean 'format'?)"),
    (["layers", "model=alexnet"], "no run of model 'alexnet'"),
    (["scaling", "bogus=1"], "unknown option 'bogus' for scaling; its options: results_dir= format="),
    (["scaling", "formt=json"], "unknown option 'formt' for scaling (did you mean 'format'?)"),
])
def test_analysis_bad_input_is_one_line(tmp_path, args, message):
    out = subprocess.run([sys.executable, "-m", "commbench", *args, f"results_dir={tmp_path}"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def commbench_table(*args):
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}  # piped: 100 columns
    out = subprocess.run([sys.executable, "-m", "commbench", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(map(len, lines)) <= 100, max(lines, key=len)
    return lines


def test_tables_fit_100_columns_and_answer_first(tmp_path):
    lines = commbench_table("predict", "model=alexnet", "nodes=64", "network.bandwidth=10gbit",
                            "network.latency=5us", "compute_s=0.05", f"results_dir={tmp_path}")
    assert lines[0].startswith("alexnet at N=64 on 10 Gbit/s (ring): ") and "efficient" in lines[0]
    for r in RUNS:
        append_record(tmp_path / "runs.jsonl", r)
    lines = commbench_table("scaling", f"results_dir={tmp_path}")
    assert lines[0].startswith("measured E(4): alexnet 50% (")
    append_record(tmp_path / "busbw.jsonl", {"kind": "busbw", "nodes": 2,
                                             "fit": {"alpha_s": 1e-4, "beta_s_per_byte": 1e-9}})
    append_record(tmp_path / "replay.jsonl", {"model": "squeezenet", "nodes": 2, "bucket_bytes": [1_000_000],
                                              "payload_bytes": 1_000_000, "mode": "back_to_back", "step_time_s": 0.002})
    lines = commbench_table("validate", f"results_dir={tmp_path}")
    assert lines[0].startswith("comm-only replays against the busbw fit: ")
