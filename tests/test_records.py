"""runs.jsonl: whole-line atomic appends, concurrent writers, damaged lines skipped, resume hashes.

A truncated last line (a power loss) is skipped and reported on reading, and the next append starts on a
fresh line: no earlier record is lost."""

from __future__ import annotations

import json
import multiprocessing as mp

from commbench.results.store import append_record, finished_hashes, read_records


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
