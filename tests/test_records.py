"""runs.jsonl: whole-line atomic appends, concurrent writers, damaged lines skipped, resume hashes,
schema versions.

A truncated last line (a power loss) is skipped and reported on reading, and the next append starts on a
fresh line: no earlier record is lost. A record without `schema` (written before it existed) is read back
in the current form: the fields it predates filled with what it measured, old names renamed."""

from __future__ import annotations

import json
import multiprocessing as mp

from commbench.results.schema import SCHEMA_VERSION, upgrade
from commbench.results.store import append_record, finished_hashes, read_records, records_of


def _writer(path: str, writer: int, count: int) -> None:
    from pathlib import Path

    for i in range(count):
        # Large lines, so a non-atomic append would interleave visibly.
        append_record(Path(path), {"writer": writer, "i": i, "pad": "x" * 20000})


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "runs.jsonl"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    got = read_records(path)
    assert got.bad_lines == []
    assert sorted((r["writer"], r["i"]) for r in got.records) == [(w, i) for w in range(4) for i in range(25)]


def test_truncated_last_line_is_skipped_reported_and_sealed(tmp_path):
    path = tmp_path / "runs.jsonl"
    append_record(path, {"config_hash": "a", "status": "ok"})
    append_record(path, {"config_hash": "b", "status": "ok"})
    with open(path, "ab") as fh:  # a power loss mid-write: half a line, no newline
        fh.write(b'{"config_hash": "c", "sta')
    got = read_records(path)
    assert [r["config_hash"] for r in got.records] == ["a", "b"] and got.bad_lines == [3]

    append_record(path, {"config_hash": "d", "status": "ok"})  # appending continues
    got = read_records(path)
    assert [r["config_hash"] for r in got.records] == ["a", "b", "d"] and got.bad_lines == [3]
    assert path.read_bytes().count(b"\n") == 4


def test_finished_hashes_count_only_successful_runs(tmp_path):
    path = tmp_path / "runs.jsonl"
    for h, status in (("a", "ok"), ("b", "failed"), ("c", "ok")):
        append_record(path, {"config_hash": h, "status": status})
    path.open("a").write("[1, 2]\n")  # valid JSON, not a record
    assert finished_hashes(path) == {"a", "c"}
    assert read_records(path).bad_lines == [4]
    assert finished_hashes(tmp_path / "missing.jsonl") == set()


def test_record_is_one_sorted_json_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    append_record(path, {"b": 1, "a": {"nested": [1, 2]}})
    assert path.read_text() == json.dumps({"a": {"nested": [1, 2]}, "b": 1}, sort_keys=True) + "\n"


# What a record that predates the setup identity's fields measured (setup.DEFAULTS), as upgraded.
FILLED = {"cluster_kind": "local", "cluster_address": None, "bandwidth_bits_per_s": None, "latency_s": None,
          "loss_percent": None, "use_gpu": False, "device": None, "compression": "none", "compression_params": {},
          "bucket_cap_mb": 25.0, "broadcast_buffers": True, "threads_per_worker": None, "image_size": None,
          "batch_size": None, "host": None, "host_cpus": None}
# A run as the first runs.jsonl lines were written: no kind or schema, no setup identity, no step split;
# comm_time_s the time blocked after the last bucket (what exposed_comm_s became).
OLD_RUN = ('{"model": "alexnet", "nodes": 2, "steps": 2, "warmup": 1, "batch_size": 8, "seed": 0, "status": "ok", '
           '"config_hash": "0123abcd", "params": 61100840, "grad_bytes_per_step": 244403360, '
           '"sent_bytes_per_step": 244403360, "step_time_s": 0.5, "step_time_p90_s": 0.6, "compute_time_s": 0.3, '
           '"comm_time_s": 0.2, "comm_time_p90_s": 0.25, "throughput": 32.0, '
           '"per_step": {"step_time_s": [0.5, 0.6], "compute_time_s": [0.3, 0.3], "comm_time_s": [0.2, 0.3]}}')
# A comm-only replay from before replay modes: comm_time_s timed the whole replayed step.
OLD_BACK_TO_BACK = ('{"kind": "replay", "model": "squeezenet", "nodes": 2, "bucket_bytes": [4993696], '
                    '"payload_bytes": 4993696, "iters": 3, "comm_time_s": 0.01, "comm_time_p90_s": 0.012, '
                    '"times_s": [0.009, 0.01, 0.012], "compute_time_1_s": 0.05, "projected_efficiency": 0.8}')


def test_an_unversioned_run_is_read_back_in_the_current_form(tmp_path):
    (tmp_path / "runs.jsonl").write_text(OLD_RUN + "\n")
    [got] = records_of(tmp_path, "run")
    assert got == {"kind": "run", "schema": SCHEMA_VERSION, **FILLED, "batch_size": 8,
                   "model": "alexnet", "nodes": 2, "steps": 2, "warmup": 1, "seed": 0, "status": "ok",
                   "config_hash": "0123abcd", "params": 61100840, "grad_bytes_per_step": 244403360,
                   "sent_bytes_per_step": 244403360, "step_time_s": 0.5, "step_time_p90_s": 0.6,
                   "compute_time_s": 0.3, "exposed_comm_s": 0.2, "exposed_comm_p90_s": 0.25, "throughput": 32.0,
                   "per_step": {"step_time_s": [0.5, 0.6], "compute_time_s": [0.3, 0.3],
                                "exposed_comm_s": [0.2, 0.3], "payload_bytes": [244403360, 244403360]}}
    assert read_records(tmp_path / "runs.jsonl").records == [got]  # every read path upgrades
    assert finished_hashes(tmp_path / "runs.jsonl") == {"0123abcd"}  # resume still finds it by its hash


def test_an_old_back_to_back_replay_times_its_step_not_a_comm_time(tmp_path):
    (tmp_path / "replay.jsonl").write_text(OLD_BACK_TO_BACK + "\n")
    [got] = records_of(tmp_path, "replay")
    assert got == {"kind": "replay", "schema": SCHEMA_VERSION, **FILLED, "mode": "back_to_back",
                   "model": "squeezenet", "nodes": 2, "bucket_bytes": [4993696], "payload_bytes": 4993696,
                   "iters": 3, "times_s": [0.009, 0.01, 0.012], "compute_time_1_s": 0.05,
                   "projected_efficiency": 0.8, "step_time_s": 0.01, "step_time_p90_s": 0.012,
                   "exposed_comm_s": 0.01, "exposed_comm_p90_s": 0.012}  # no compute: all of the step exposed


def test_unversioned_replays_with_a_mode_lose_only_the_second_name():
    back = {"kind": "replay", "mode": "back_to_back", "step_time_s": 0.02, "step_time_p90_s": 0.03,
            "exposed_comm_s": 0.02, "comm_busy_s": 0.019, "comm_time_s": 0.02, "comm_time_p90_s": 0.03}
    assert upgrade(back, "replay") == {**FILLED, "kind": "replay", "schema": SCHEMA_VERSION, "mode": "back_to_back",
                                       "step_time_s": 0.02, "step_time_p90_s": 0.03, "exposed_comm_s": 0.02,
                                       "exposed_comm_p90_s": 0.03, "comm_busy_s": 0.019}
    # a trace replay from before trace=run replayed a nodes=1 run's trace
    trace = {"kind": "replay", "mode": "trace", "step_time_s": 0.2, "exposed_comm_s": 0.05, "comm_time_s": 0.05,
             "comm_time_p90_s": 0.07}
    assert upgrade(trace, "replay") == {**FILLED, "kind": "replay", "schema": SCHEMA_VERSION, "mode": "trace",
                                        "trace_nodes": 1, "step_time_s": 0.2, "exposed_comm_s": 0.05,
                                        "exposed_comm_p90_s": 0.07}
    assert "schema" not in back and "comm_time_s" in trace  # the record read is left as it was


def test_a_current_record_passes_through_unchanged(tmp_path):
    current = {"kind": "replay", "schema": SCHEMA_VERSION, "mode": "trace", "nodes": 2, "step_time_s": 0.2,
               "exposed_comm_s": 0.05, "exposed_comm_p90_s": 0.07, "trace_nodes": 2, "cluster_kind": "emulated"}
    assert upgrade(current, "replay") is current
    append_record(tmp_path / "replay.jsonl", current)
    assert records_of(tmp_path, "replay") == [current]


def test_records_written_now_carry_the_schema_version(tmp_path):
    from commbench.overrides import plan_from
    from commbench.results.store import collective_record, failed_record, path_of

    plan = plan_from(["model=squeezenet", "nodes=2", f"results_dir={tmp_path}"])
    append_record(path_of(tmp_path, "run"), failed_record(plan, "boom"))
    append_record(path_of(tmp_path, "busbw"), collective_record(plan, "busbw"))
    [failed] = records_of(tmp_path, "run", ok_only=False)
    [busbw] = records_of(tmp_path, "busbw")
    assert (failed["schema"], failed["kind"], busbw["schema"], busbw["kind"]) == (SCHEMA_VERSION, "run",
                                                                                  SCHEMA_VERSION, "busbw")
    assert json.loads((tmp_path / "runs.jsonl").read_text())["schema"] == SCHEMA_VERSION == 2
