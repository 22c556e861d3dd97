"""The results layer: every record of every kind in one DataFrame, exports read back, and joins that
never combine records measured on different setups.

Joins refused across setups: a loopback busbw fit never prices an emulated replay, a top-k or PowerSGD
layout is never replayed as an all-reduce, a bucket layout of another cap is refused by name, and a
baseline needs the same threads per worker."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from commbench import results
from commbench.commands.predict import COMMAND as PREDICT
from commbench.commands.predict import model_inputs
from commbench.commands.replay import bucket_run, job_for, projection
from commbench.overrides import plan_from
from commbench.results import setup
from commbench.results.scaling import scaling_rows
from commbench.results.store import append_record, finished_hashes, records_of
from commbench.results.validation import mismatch, validation_rows
from tests.test_scaling import run

BUCKETS = [{"index": 0, "dtype": "float32", "numel": 100, "payload_bytes": 400, "params": 2}]
TOPK_BUCKETS = [{"index": 0, "dtype": "float32", "numel": 100, "payload_bytes": 8, "params": 2}]
REPLAY_OPTS = {"mode": "back_to_back", "trace": None, "compute.scale": 1.0, "compute.step_s": None}
PREDICT_OPTS = {o.name: o.default for o in PREDICT.options}  # predict's defaults: nccl, no compute_s


def fill(folder, runs=(), busbw=(), replays=()):
    for r in runs:
        append_record(folder / "runs.jsonl", r)
    for r in busbw:
        append_record(folder / "busbw.jsonl", {"kind": "busbw", **r})
    for r in replays:
        append_record(folder / "replay.jsonl", {"kind": "replay", **r})


def fit(nodes, **setup_fields):
    return {"nodes": nodes, "fit": {"alpha_s": 1e-4, "beta_s_per_byte": 1e-9}, **setup_fields}


def replay(model, nodes, **setup_fields):
    return {"model": model, "model_kwargs": {"num_classes": 1000}, "nodes": nodes, "bucket_bytes": [400],
            "payload_bytes": 400, "mode": "back_to_back", "step_time_s": 0.01, **setup_fields}


def test_load_returns_every_record_of_every_kind(tmp_path):
    fill(tmp_path, runs=[run("alexnet", 1, 100.0, 0.08, 0.08, 0.0, 0.0), {**run("alexnet", 2, 1, 1, 1, 1, 1),
                                                                          "status": "failed"}],
         busbw=[fit(2)], replays=[replay("alexnet", 2, bandwidth_bits_per_s=1e8, cluster_kind="emulated")])
    frame = results.load(tmp_path)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert sorted(frame.kind) == ["busbw", "replay", "run", "run"]
    assert set(setup.SETUP) <= set(frame.columns)
    # Records that predate a field read as its default: a run without compression was uncompressed.
    assert list(frame[frame.kind == "busbw"].compression) == ["none"]
    assert frame[frame.kind == "replay"].bandwidth_bits_per_s.iloc[0] == 1e8
    assert len(results.load(tmp_path, ok_only=True)) == 3


@pytest.mark.parametrize("fmt, read", [("csv", pd.read_csv), ("parquet", pd.read_parquet),
                                       ("json", lambda p: pd.read_json(p, lines=True))])
def test_export_reads_back(tmp_path, fmt, read):
    fill(tmp_path, runs=[run("alexnet", 1, 100.0, 0.08, 0.08, 0.0, 0.0, buckets=BUCKETS)], busbw=[fit(2)])
    path, rows = results.export(tmp_path, fmt)
    back = read(path)
    assert rows == len(back) == 2 and sorted(back.kind) == ["busbw", "run"]
    row = back[back.kind == "run"].iloc[0]
    assert row.throughput == 100.0
    buckets = row.buckets if fmt == "json" else json.loads(row.buckets)  # nested fields: JSON text in csv/parquet
    assert buckets == BUCKETS


def test_validate_never_pairs_an_emulated_replay_with_a_loopback_fit(tmp_path):
    fits = [fit(2, cluster_kind="local")]
    replays = [replay("squeezenet", 2, cluster_kind="emulated", bandwidth_bits_per_s=1e8)]
    assert validation_rows(fits, replays) == []
    why = mismatch(fits, replays)
    assert "different setups" in why and "cluster_kind emulated vs local" in why and "bandwidth 100 Mbit/s vs unset" in why
    same = [fit(2, cluster_kind="emulated", bandwidth_bits_per_s=1e8)]
    [row] = validation_rows(fits + same, replays)
    assert row["predicted_s"] == pytest.approx(2e-4 + 400e-9)


def test_replay_never_prices_topk_buckets_as_an_all_reduce(tmp_path, capsys):
    fill(tmp_path, runs=[{**run("squeezenet", 2, 1, 1, 1, 1, 1), "buckets": BUCKETS, "config_hash": "fp32"},
                         {**run("squeezenet", 2, 1, 1, 1, 1, 1), "buckets": TOPK_BUCKETS, "config_hash": "topk",
                          "compression": "topk", "compression_params": {"ratio": 0.01}}])
    runs = records_of(tmp_path, "run")
    plan = plan_from(["model=squeezenet", "nodes=4", f"results_dir={tmp_path}"])
    assert bucket_run(plan, runs)["config_hash"] == "fp32"  # the newest is top-k's: not this layout
    topk = plan_from(["model=squeezenet", "nodes=4", "compression=topk", f"results_dir={tmp_path}"])
    for mode in ("back_to_back", "trace"):
        with pytest.raises(SystemExit):
            job_for(topk, runs, {**REPLAY_OPTS, "mode": mode})
        assert "compression=topk sends its buckets through all-gathers" in capsys.readouterr().err
    # predict takes the uncompressed buckets too, and says whose.
    inputs = model_inputs("squeezenet", runs, PREDICT_OPTS)
    assert inputs["trace"].buckets == (400,) and "buckets of record fp32" in inputs["source"]


def test_replay_refuses_powersgd_whose_payload_is_computed_each_step(tmp_path, capsys):
    plan = plan_from(["model=squeezenet", "nodes=2", "compression=powersgd", f"results_dir={tmp_path}"])
    with pytest.raises(SystemExit):
        job_for(plan, [], REPLAY_OPTS)
    assert "compression=powersgd computes its payload anew every step" in capsys.readouterr().err


def test_a_bucket_layout_of_another_cap_is_refused_by_name(tmp_path, capsys):
    fill(tmp_path, runs=[{**run("squeezenet", 2, 1, 1, 1, 1, 1), "buckets": BUCKETS, "bucket_cap_mb": 1}])
    with pytest.raises(SystemExit):
        bucket_run(plan_from(["model=squeezenet", "nodes=4", f"results_dir={tmp_path}"]), records_of(tmp_path, "run"))
    assert "bucket_cap_mb 1.0 vs 25.0" in capsys.readouterr().err


def test_baselines_need_the_same_threads(tmp_path):
    one_thread = run("alexnet", 1, 100.0, 0.08, 0.08, 0.0, 0.0)
    two_threads = {**one_thread, "threads_per_worker": 2, "throughput": 180.0}
    at_two = run("alexnet", 2, 150.0, 0.106, 0.08, 0.02, 0.05)
    rows = {(r["nodes"], r["efficiency"]) for r in scaling_rows([two_threads, at_two])}
    assert (2, None) in rows  # the only nodes=1 run had other threads: no E(2)
    rows = {r["nodes"]: r for r in scaling_rows([two_threads, one_thread, at_two]) if r["nodes"] == 2}
    assert rows[2]["efficiency"] == pytest.approx(150 / (2 * 100))
    # a back-to-back replay's projected efficiency takes the like-for-like baseline too
    assert projection([two_threads], at_two, 0.02)["compute_time_1_s"] is None
    assert projection([one_thread, two_threads], at_two, 0.02)["compute_time_1_s"] == one_thread["step_time_s"]


def test_resume_reruns_a_cell_whose_threads_differ(tmp_path):
    plan = plan_from(["nodes=2", f"results_dir={tmp_path}"])
    append_record(plan.runs_file, {"config_hash": plan.config_hash(), "status": "ok"})
    assert plan.threads_per_worker == 1  # one thread per worker on a shared machine, at every N
    other = plan_from(["nodes=2", "cluster.threads_per_worker=2", f"results_dir={tmp_path}"])
    assert plan.config_hash() in finished_hashes(plan.runs_file)
    assert other.config_hash() not in finished_hashes(plan.runs_file)


def test_every_record_kind_carries_the_setup_identity(tmp_path):
    from commbench.results.store import base_record, collective_record

    plan = plan_from(["nodes=2", "compression=fp16", f"results_dir={tmp_path}"])
    for record in (base_record(plan), collective_record(plan, "busbw"), collective_record(plan, "replay")):
        assert set(setup.SETUP) - {"device"} <= set(record), set(setup.SETUP) - set(record)
        assert record["compression"] == "fp16" and record["threads_per_worker"] == 1


def test_predict_ranks_by_comm_time_and_efficiency_only_where_compute_is_known():
    from commbench.commands.predict import ranking
    from commbench.netmodel import Cluster, Network

    alexnet_one = {**run("alexnet", 1, 100.0, 0.08, 0.08, 0.0, 0.0), "buckets": [
        {"index": 0, "dtype": "float32", "numel": 61_100_840, "payload_bytes": 244_403_360, "params": 16}]}
    alexnet_one["trace"] = {"buckets": [{"index": 0, "payload_bytes": 244_403_360, "dtype": "float32",
                                         "collective": "all_reduce"}],
                            "ranks": [{"rank": 0, "forward_s": 0.02, "backward_s": 0.05, "codec_s": 0.0,
                                       "optimizer_s": 0.01, "ready_offsets_s": [0.05]}]}
    rows = ranking([alexnet_one], {**PREDICT_OPTS, "nodes": 8}, Cluster(Network(5e-6, 8 / 10e9)), 1)
    assert [r["comm_s"] for r in rows] == sorted(r["comm_s"] for r in rows)
    by_model = {r["model"]: r for r in rows}
    assert by_model["squeezenext"]["comm_s"] < by_model["alexnet"]["comm_s"]
    assert [m for m, r in by_model.items() if r["efficiency"] is not None] == ["alexnet"]
    assert rows[-1]["model"] != "squeezenext"  # the smallest payloads are not ranked last for lack of a baseline


def test_analysis_reads_unversioned_records_with_one_meaning_of_comm(tmp_path):
    """Lines as the first versions wrote them (no schema, kind or setup identity; comm_time_s exposed comm
    in a run, the whole step in a replay): scaling and validate read them upgraded."""
    def old_run(nodes, step, comm, throughput):
        return json.dumps({"model": "squeezenet", "nodes": nodes, "status": "ok", "config_hash": f"h{nodes}",
                           "host": "vm", "throughput": throughput, "step_time_s": step, "compute_time_s": step - comm,
                           "comm_time_s": comm, "comm_time_p90_s": comm, "grad_bytes_per_step": 400,
                           "sent_bytes_per_step": 400 if nodes > 1 else 0})

    (tmp_path / "runs.jsonl").write_text(old_run(1, 0.08, 0.0, 100.0) + "\n" + old_run(2, 0.1, 0.02, 160.0) + "\n")
    (tmp_path / "replay.jsonl").write_text(json.dumps(
        {"kind": "replay", "model": "squeezenet", "nodes": 2, "host": "vm", "bucket_bytes": [400], "payload_bytes": 400,
         "comm_time_s": 0.01, "comm_time_p90_s": 0.011}) + "\n")
    (tmp_path / "busbw.jsonl").write_text(json.dumps({"kind": "busbw", "nodes": 2, "host": "vm", **fit(2)}) + "\n")
    rows = {r["nodes"]: r for r in scaling_rows(records_of(tmp_path, "run"), records_of(tmp_path, "replay"))}
    assert (rows[2]["efficiency"], rows[2]["exposed_comm_s"], rows[2]["replay_comm_s"]) == (0.8, 0.02, 0.01)
    assert rows[2]["projected_efficiency"] == 0.08 / (0.08 + 0.01)
    [row] = validation_rows(records_of(tmp_path, "busbw"), records_of(tmp_path, "replay"))
    assert (row["measured_s"], row["predicted_s"]) == (0.01, pytest.approx(2e-4 + 400e-9))
