"""Faults injected into real runs: a training worker killed mid-run, the driver interrupted mid-sweep.
Each is bounded in time; none may hang, lose a finished record, or leave a Ray process behind.

In the default suite: a worker killed mid-run (the run fails naming the rank), a worker killed in the
middle cell of a sweep (that cell recorded as failed, the next on a fresh worker group, resume rerunning only
it) and a sweep interrupted by SIGTERM (the finished cell recorded, the one in flight not, Ray gone). Marked
slow: a killed worker restarted with failure.max_restarts=1, and the sweep interrupted by SIGINT (Ctrl-C).
launch/README.md, "When things go wrong", has what the user sees and how long each takes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from commbench.results.store import read_records

REPO = Path(__file__).resolve().parents[1]
RUN = ["model=squeezenet1_1", "batch_size=4", "image_size=32", "warmup=1", "collective_timeout_s=30"]


def children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(root: int) -> list[int]:
    kids, out, todo = children(), [], [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "commbench", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_line(proc: subprocess.Popen, text: str, timeout_s: float) -> str:
    """Read the run's stdout up to a line holding `text` (the rest stays for communicate()). Plain
    readline, no select(): lines already in the pipe's Python buffer are invisible to select(), and a
    phase line that came with the one before it would be seen only at the next phase, too late."""
    timer = threading.Timer(timeout_s, proc.kill)  # a run that says nothing more is ended, not waited on
    timer.start()
    try:
        for line in iter(proc.stdout.readline, ""):
            if text in line:
                return line
    finally:
        timer.cancel()
    raise AssertionError(f"no {text!r} on stdout within {timeout_s:.0f} s (or the run ended first)")


def train_workers(proc: subprocess.Popen) -> list[int]:
    """This run's Ray Train workers (descendants of its driver: the embedded Ray is its child)."""
    return [p for p in descendants(proc.pid) if "RayTrainWorker" in cmdline(p)]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def kill_a_worker_mid_run(proc: subprocess.Popen) -> float:
    workers = wait_for(lambda: len(train_workers(proc)) == 2 and train_workers(proc), 120, "two train workers")
    # Into the timed steps, however fast or loaded the machine: the run says so on its stdout (a
    # pipe gets one line per phase); a kill during start-up would test Ray's start-up failure instead.
    wait_for_line(proc, "timed steps (", 180)
    os.kill(max(workers), signal.SIGKILL)
    return time.monotonic()


def test_a_worker_group_that_never_got_its_resources_is_one_plain_line(monkeypatch):
    """Ray's own error, as its controller hands it to the driver (pickled): the wait and what to set,
    not Ray's advice to ignore it while an autoscaler works (a lost node: tests/test_emulated.py)."""
    import pickle

    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError
    from ray.train.v2.api.exceptions import ControllerError

    from commbench.runner import run_error

    monkeypatch.delenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", raising=False)
    failure = pickle.loads(pickle.dumps(ControllerError(WorkerGroupStartupTimeoutError(num_workers=2))))
    assert str(run_error(failure)) == (
        "training failed: The worker group startup timed out after 60.0 seconds waiting for 2 workers: "
        "their resources never came free (a node lost, or the cluster busy); "
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S sets the wait")


def test_killed_worker_fails_the_run_naming_the_rank(tmp_path):
    proc = start(*RUN, "nodes=2", "steps=300", f"results_dir={tmp_path}")
    killed = kill_a_worker_mid_run(proc)
    out, err = proc.communicate(timeout=120)
    detected = time.monotonic() - killed
    assert proc.returncode == 2, err[-3000:]
    assert detected < 30  # the collective timeout bounds it; Ray notices a dead actor in seconds
    # One line of commbench's own (Ray may echo the workers' tracebacks around it).
    [last] = [line for line in err.splitlines() if line.startswith("commbench: error:")]
    assert last.startswith("commbench: error: squeezenet1_1 nodes=2: training failed: ")
    # Ray names the dead rank when the worker group reports it, not when its controller sees the dead actor first.
    assert re.search(r"rank \d: its worker process died|a worker process died", last), last
    [failed] = read_records(tmp_path / "runs.jsonl").records
    assert failed["status"] == "failed" and "worker process died" in failed["error"]
    time.sleep(2)
    assert not [p for p in descendants(proc.pid)]  # nothing of this run's Ray left
    # That resume reruns a failed cell: test_a_failed_cell_is_recorded_and_the_sweep_goes_on.


@pytest.mark.slow  # the default suite keeps to 15 min on 2 cores
def test_killed_worker_restarts_the_run_with_max_restarts(tmp_path):
    proc = start(*RUN, "nodes=2", "steps=300", "failure.max_restarts=1", f"results_dir={tmp_path}")
    kill_a_worker_mid_run(proc)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    [record] = read_records(tmp_path / "runs.jsonl").records
    # The restarted attempt ran all its steps from the start: its timings alone are in the record.
    assert record["status"] == "ok" and record["attempts"] == 2
    assert len(record["per_step"]["step_time_s"]) == 300


# SIGTERM (scancel, docker stop, kill) in the default suite; Ctrl-C, the same path, with the slow tests.
@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_interrupted_sweep_stops_cleanly_keeping_finished_cells(sig, tmp_path):
    sweep = ["-m", *RUN, "nodes=1,2", "steps=300", f"results_dir={tmp_path}"]
    proc = start(*sweep)
    runs = tmp_path / "runs.jsonl"
    wait_for(lambda: runs.exists() and read_records(runs).records, 180, "the first cell's record")
    wait_for(lambda: len(train_workers(proc)) == 2, 120, "the second cell's workers")
    ray_processes = descendants(proc.pid)
    proc.send_signal(sig)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == ("commbench: interrupted: finished runs are recorded; the same command "
                                            "resumes with the first unfinished one")
    # The finished cell is recorded, the interrupted one not at all: resume (shown in the test below)
    # skips the first and runs the second.
    assert [(r["nodes"], r["status"]) for r in read_records(runs).records] == [(1, "ok")]
    time.sleep(2)
    assert not [p for p in ray_processes if os.path.exists(f"/proc/{p}") and cmdline(p)]  # Ray is gone


def test_a_failed_cell_is_recorded_and_the_sweep_goes_on(tmp_path):
    """A worker killed in the middle cell of a sweep: that cell is recorded as failed, its neighbours
    are recorded as they finish (the next one on a fresh worker group), and resume reruns only it."""
    sweep = ["-m", *RUN, "nodes=2", "seed=0,1,2", "steps=300", f"results_dir={tmp_path}"]
    runs = tmp_path / "runs.jsonl"
    proc = start(*sweep)
    wait_for(lambda: runs.exists() and read_records(runs).records, 240, "the first cell's record")
    workers = train_workers(proc)
    busy = sum(cpu_seconds(p) for p in workers)
    # Into the second cell's steps (same workers: one group per world size), then kill one.
    wait_for(lambda: sum(cpu_seconds(p) for p in workers) > busy + 2, 120, "the second cell's steps")
    os.kill(max(workers), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("commbench: error:")]
    assert errors[0].startswith("commbench: error: squeezenet1_1 nodes=2: training failed: ")
    assert errors[-1] == ("commbench: error: 1 of 3 cells failed (recorded as failed; the same command reruns "
                          "them)")
    records = read_records(runs).records
    assert [(r["seed"], r["status"]) for r in records] == [(0, "ok"), (1, "failed"), (2, "ok")]
    assert records[2]["worker_group"] != records[0]["worker_group"] and records[2]["group_started"]
    assert "[3/3] squeezenet1_1 nodes=2: 4.94 MB/step" in out

    again = subprocess.run([sys.executable, "-m", "commbench", *sweep], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("recorded earlier, skipped (resume=true; config_hash ") == 2
    records = read_records(runs).records
    assert [(r["seed"], r["status"]) for r in records] == [(0, "ok"), (1, "failed"), (2, "ok"), (1, "ok")]
    assert records[3]["config_hash"] == records[1]["config_hash"] and records[3]["attempts"] == 1
