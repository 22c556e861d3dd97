"""Real Ray runs end to end: `python -m commbench ...` -> Ray Train -> record in runs.jsonl.

Each test starts real Ray (embedded, or a separate "existing cluster" process) and real gloo workers.

In the default suite: a run plus resume; a four-cell sweep on two worker groups (one per world size: the
same worker processes in both models' cells, one line per phase in a pipe, resume reprinting what it skipped,
no second W&B summary); an unreachable cluster in one line. Marked slow: an existing cluster started by
another process, and the busbw -> replay -> validate -> scaling chain on Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from commbench.results.store import HASHED_FIELDS, LATER_FIELDS
from commbench.results.store import read_records
from tests.wandb_files import runs as wandb_runs

REPO = Path(__file__).resolve().parents[1]
SMALL = ["steps=3", "warmup=1", "batch_size=4", "image_size=32"]
SQUEEZENET_PARAMS = 1_248_424
SQUEEZENET1_1_PARAMS = 1_235_496

# The list of fields every record carries.
RECORD_FIELDS = {"model", "nodes", "params", "grad_bytes_per_step", "sent_bytes_per_step", "step_time_s",
                 "compute_time_s", "exposed_comm_s", "throughput", "batch_size", "image_size", "config_hash",
                 "versions", "host", "buffer_bytes_per_step", "layer_bytes", "buckets", "status", "schema"}


def commbench(*args: str, env: dict | None = None, timeout: float = 400):
    return subprocess.run([sys.executable, "-m", "commbench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_run_writes_a_record_and_resume_skips_it(tmp_path):
    out = commbench("model=squeezenet", "nodes=2", *SMALL, f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "gradient payload / step" in out.stdout and "4,993,696 B" in out.stdout

    [record] = read_records(tmp_path / "runs.jsonl").records
    assert RECORD_FIELDS <= set(record) and set(HASHED_FIELDS) - set(LATER_FIELDS) <= set(record)
    assert record["status"] == "ok" and record["model"] == "squeezenet" and record["nodes"] == 2
    assert record["params"] == SQUEEZENET_PARAMS
    assert record["grad_bytes_per_step"] == 4 * SQUEEZENET_PARAMS
    assert record["sent_bytes_per_step"] == 4 * SQUEEZENET_PARAMS  # ring, N=2: 2(N-1)/N = 1
    assert sum(b["payload_bytes"] for b in record["buckets"]) == 4 * SQUEEZENET_PARAMS
    assert sum(record["layer_bytes"].values()) == 4 * SQUEEZENET_PARAMS
    layers = record["layer_bytes"]
    assert max(layers, key=layers.get) == "classifier.1"  # conv10: 513,000 of the 1.25M parameters
    assert len(record["per_step"]["step_time_s"]) == 3
    assert 0 < record["exposed_comm_s"] <= record["step_time_s"] + 1e-9
    assert record["throughput"] == pytest.approx(2 * 4 / record["step_time_s"])
    assert set(record["versions"]) == {"torch", "ray", "python"}
    assert record["run_s"] > record["ray_overhead_s"] > record["ray_init_s"] > 0

    # The default logging: one offline W&B run under results_dir holding the record's values.
    [run] = wandb_runs(tmp_path)
    assert (run["job_type"], run["group"], run["name"]) == ("run", "", "squeezenet-n2")
    assert run["config"]["config_hash"] == record["config_hash"]
    assert [h["step/step_time_s"] for h in run["history"]] == record["per_step"]["step_time_s"]
    assert [h["step/payload_bytes"] for h in run["history"]] == [4 * SQUEEZENET_PARAMS] * 3
    for key in ("params", "grad_bytes_per_step", "sent_bytes_per_step", "step_time_s", "exposed_comm_s", "throughput"):
        assert run["summary"][key] == record[key], key
    assert sum(row[1] for row in run["tables"]["layers"]["data"]) == 4 * SQUEEZENET_PARAMS
    assert f"W&B run (offline): {tmp_path / 'wandb'}" in out.stdout

    again = commbench("model=squeezenet", "nodes=2", *SMALL, f"results_dir={tmp_path}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (f"recorded earlier, skipped (resume=true; config_hash {record['config_hash']}): squeezenet nodes=2: "
            f"4.99 MB/step, step {record['step_time_s'] * 1e3:.1f} ms") in again.stdout
    assert len(read_records(tmp_path / "runs.jsonl").records) == 1


def test_multirun_writes_one_record_per_cell_and_resumes(tmp_path):
    sweep = ["-m", "model=squeezenet1_1,squeezenet", "nodes=1,2", *SMALL, f"results_dir={tmp_path}"]
    out = commbench(*sweep)
    assert out.returncode == 0, out.stderr[-3000:]
    records = {(r["model"], r["nodes"]): r for r in read_records(tmp_path / "runs.jsonl").records}
    assert set(records) == {(m, n) for m in ("squeezenet1_1", "squeezenet") for n in (1, 2)}
    for (model, _), r in records.items():
        assert r["grad_bytes_per_step"] == 4 * (SQUEEZENET1_1_PARAMS if model == "squeezenet1_1" else SQUEEZENET_PARAMS)
    first = {n: records["squeezenet1_1", n] for n in (1, 2)}
    # nodes=1 is the scaling baseline: the payload that would be exchanged, nothing sent.
    assert first[1]["sent_bytes_per_step"] == 0 and first[1]["exposed_comm_s"] == 0
    assert first[2]["sent_bytes_per_step"] == 4 * SQUEEZENET1_1_PARAMS
    assert len({r["config_hash"] for r in records.values()}) == 4

    # One worker group per world size: the second model's cells ran on the processes of the first's,
    # and the nodes=1 group was gone before the nodes=2 group started.
    assert len({r["worker_group"] for r in records.values()}) == 2
    for n in (1, 2):
        a, b = records["squeezenet1_1", n], records["squeezenet", n]
        assert a["worker_group"] == b["worker_group"] and a["worker_pids"] == b["worker_pids"]
        assert len(set(a["worker_pids"])) == n and (a["group_started"], b["group_started"]) == (True, False)

    # Progress: cells done/total, a line per finished cell with its efficiency; in a pipe, one line
    # per phase and no redraws.
    e2 = first[2]["throughput"] / (2 * first[1]["throughput"])
    # World size by world size (nodes varies slowest), whatever the order on the command line.
    assert "[1/4] squeezenet1_1 nodes=1: 4.94 MB/step" in out.stdout and "[2/4] squeezenet nodes=1: " in out.stdout
    assert "[3/4] squeezenet1_1 nodes=2: 4.94 MB/step" in out.stdout and f"E(2) {e2:.1%}" in out.stdout
    assert "\r" not in out.stdout
    phases = [line.split(": ", 1)[1] for line in out.stdout.splitlines()
              if line.startswith("  squeezenet1_1 nodes=2: ")]
    assert phases == ["starting 2 worker processes", "building the model", "warmup (1)", "timed steps (3)",
                      "gathering the figures", "writing the record"]
    reused = [line for line in out.stdout.splitlines() if line.startswith("  squeezenet nodes=2: ")]
    assert reused[0] == "  squeezenet nodes=2: building the model"  # no start-up: the group was up
    # The sweep's end: the local report and a W&B summary run, in the cells' group.
    assert (tmp_path / "report" / "summary.md").exists() and (tmp_path / "report" / "efficiency_vs_nodes.png").exists()
    cells, [summary] = ([r for r in wandb_runs(tmp_path) if r["job_type"] == job] for job in ("run", "sweep-summary"))
    group = next((tmp_path / "hydra").glob("multirun-*")).name
    assert {r["group"] for r in cells} == {summary["group"]} == {group} and len(cells) == 4
    assert {r["config"]["nodes"]: r["summary"]["efficiency"] for r in cells
            if r["config"]["model"] == "squeezenet1_1"} == {1: 1.0, 2: pytest.approx(e2)}
    columns = summary["tables"]["scaling"]["columns"]
    scaling = {row[columns.index("nodes")]: row[columns.index("efficiency")]
               for row in summary["tables"]["scaling"]["data"] if row[columns.index("model")] == "squeezenet1_1"}
    assert scaling == {1: pytest.approx(1.0), 2: pytest.approx(e2)}

    again = commbench(*sweep)
    assert again.returncode == 0, again.stderr[-3000:]
    # Each skipped cell says what was recorded for it; no second summary run for the same results.
    assert again.stdout.count("recorded earlier, skipped") == 4
    assert "] recorded earlier, skipped (resume=true; config_hash " in again.stdout
    assert f"squeezenet nodes=2: 4.99 MB/step, step {records['squeezenet', 2]['step_time_s'] * 1e3:.1f} ms" in again.stdout
    assert "W&B summary run: none (every cell was recorded earlier" in again.stdout
    assert len([r for r in wandb_runs(tmp_path) if r["job_type"] == "sweep-summary"]) == 1
    assert len(read_records(tmp_path / "runs.jsonl").records) == 4


@pytest.fixture
def existing_cluster():
    """A Ray cluster this test does not own: started by another process, as `ray start` would be."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # head and drivers must agree on token auth
    code = ("import sys, ray; ray.init(num_cpus=4, include_dashboard=False, logging_level='ERROR');"
            "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read()")
    head = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    address = head.stdout.readline().strip()
    try:
        assert address, "the head did not start"
        yield address, env
    finally:
        head.stdin.close()  # the head's ray.shutdown() at exit stops its processes
        head.wait(timeout=60)


@pytest.mark.slow  # the default suite keeps to 15 min on 2 cores
def test_existing_cluster_address_capacity_and_run(existing_cluster, tmp_path):
    address, env = existing_cluster
    too_many = commbench("nodes=3", f"cluster.address={address}", f"results_dir={tmp_path}", env=env)
    assert too_many.returncode == 2
    assert too_many.stderr.strip().splitlines()[-1] == (
        f"commbench: error: nodes=3 is more than the cluster at {address} can place: "
        "1 alive node(s) x cluster.workers_per_node=1 = 1")
    assert not (tmp_path / "runs.jsonl").exists()

    out = commbench("model=squeezenet", "nodes=2", "cluster.workers_per_node=2", f"cluster.address={address}",
                    *SMALL, f"results_dir={tmp_path}", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    [record] = read_records(tmp_path / "runs.jsonl").records
    assert record["cluster_address"] == address and record["grad_bytes_per_step"] == 4 * SQUEEZENET_PARAMS


def test_unreachable_cluster_is_one_line(tmp_path):
    out = commbench("cluster.address=127.0.0.1:1", f"results_dir={tmp_path}", timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "commbench: error: cannot reach the Ray cluster at 127.0.0.1:1: Connection refused")


@pytest.mark.slow  # ~110 s: keeps the default suite under 15 minutes; .ci/run runs it with the slow tests
def test_busbw_replay_validate_scaling_on_ray(tmp_path):
    """The analysis chain on real Ray workers: a run records the buckets, busbw fits alpha-beta,
    the replay resends exactly the recorded payload, validate and scaling read them back."""
    results = f"results_dir={tmp_path}"
    assert commbench("-m", "model=squeezenet", "nodes=1,2", *SMALL, results).returncode == 0
    bus = commbench("busbw", "nodes=2", "min_bytes=64KiB", "max_bytes=16MiB", "iters=3", "format=json", results)
    assert bus.returncode == 0, bus.stderr[-3000:]
    [busbw] = read_records(tmp_path / "busbw.jsonl").records
    assert [r["bytes"] for r in busbw["rows"]] == [2**k for k in range(16, 25)]
    assert all(r["busbw"] == pytest.approx(r["algbw"]) for r in busbw["rows"])  # 2(N-1)/N = 1 at N=2
    assert busbw["fit"]["alpha_s"] >= 0 and busbw["fit"]["beta_s_per_byte"] > 0

    rep = commbench("replay", "model=squeezenet", "nodes=2", "iters=3", "mode=back_to_back", "format=json", results)
    assert rep.returncode == 0, rep.stderr[-3000:]
    # the trace replay takes the nodes=1 run of this compute setup (batch and image size included)
    traced = commbench("replay", "model=squeezenet", "nodes=2", "iters=3", *SMALL, "format=json", results)
    assert traced.returncode == 0, traced.stderr[-3000:]
    back, trace = read_records(tmp_path / "replay.jsonl").records
    for replay in (back, trace):
        assert replay["payload_bytes"] == 4 * SQUEEZENET_PARAMS and replay["iters"] == 3
        assert 0 < replay["projected_efficiency"] <= 1
    assert (back["mode"], trace["mode"], trace["trace_nodes"]) == ("back_to_back", "trace", 1)
    assert trace["step_time_s"] >= trace["trace_step_s"] * 0.95  # the slept compute is in every step

    val = commbench("validate", "format=json", results)
    assert val.returncode == 0, val.stderr
    assert sorted((r["comparison"], r["model"], r["nodes"]) for r in json.loads(val.stdout)) == [
        ("comm_only", "squeezenet", 2), ("timeline", "squeezenet", 2)]
    scaling = json.loads(commbench("scaling", "format=json", results).stdout)
    assert [(r["nodes"], r["replay_comm_s"] is not None) for r in scaling] == [(1, False), (2, True)]
