"""The emulated cluster: namespaces, bridge, tc shaping, Ray nodes inside, wire bytes, teardown.

Needs root with iproute2 (`ip`, `tc`); skipped otherwise. Whole-cluster runs are marked slow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commbench.cluster import emulated, netns
from commbench.cluster.emulated import ClusterError, EmulatedCluster, Link, clean_stale
from commbench.comm.wire import wire_overhead
from tests.wandb_files import runs as wandb_runs

REPO = Path(__file__).resolve().parents[1]
root = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/sbin/ip").exists() and not Path("/sbin/ip").exists(),
                          reason="needs root and iproute2")


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def commbench(*args: str, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "commbench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_wire_overhead_of_full_tcp_segments():
    assert wire_overhead(1500) == pytest.approx(1514 / 1448)
    assert wire_overhead(9000) == pytest.approx(9014 / 8948)


def test_without_root_one_clear_line(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(ClusterError, match="cluster=emulated needs root"):
        emulated.preflight()


def test_without_tc_one_clear_line(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "tc" else "/usr/sbin/ip")
    with pytest.raises(ClusterError, match="needs `tc`"):
        emulated.preflight()


@root
def test_stale_namespaces_of_a_dead_run_are_removed():
    dead = subprocess.Popen(["true"])
    dead.wait()  # a PID that no longer runs
    ns, bridge = f"cb{dead.pid}n0", f"cb{dead.pid}br"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    removed = clean_stale()
    assert ns in removed and bridge in removed and ns not in namespaces()


@root
def test_latency_without_netem_is_refused_clearly(tmp_path):
    if emulated.netem_available():
        pytest.skip("this kernel has netem")
    proc = subprocess.Popen([sys.executable, "-m", "commbench", "cluster=emulated", "nodes=2", "network.latency=1ms",
                             f"results_dir={tmp_path}"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert stderr.strip().splitlines()[-1] == (
        "commbench: error: network.latency/network.loss need the netem qdisc, which this kernel lacks "
        "(rate shaping with network.bandwidth works)")
    assert not any(n.startswith(f"cb{proc.pid}n") for n in namespaces())


@root
def test_links_are_shaped_and_torn_down():
    with EmulatedCluster(2, Link(bandwidth_bits_per_s=100e6)) as cluster:
        qdisc = subprocess.run(["ip", "netns", "exec", cluster.ns(1), "tc", "class", "show", "dev", "cbeth0"],
                               capture_output=True, text=True).stdout
        assert "rate 100Mbit" in qdisc
        assert {cluster.ns(0), cluster.ns(1)} <= namespaces()
    assert not {cluster.ns(0), cluster.ns(1)} & namespaces()


@root
@pytest.mark.slow
def test_emulated_run_records_wire_bytes(tmp_path):
    before = namespaces()
    out = commbench("model=squeezenet", "nodes=2", "cluster=emulated", "network.bandwidth=200mbit", "steps=3",
                    "warmup=1", "batch_size=4", "image_size=32", f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((tmp_path / "runs.jsonl").read_text().splitlines()[-1])
    assert record["cluster_kind"] == "emulated" and record["bandwidth_bits_per_s"] == 200e6
    assert len(record["wire_bytes_per_step"]) == 2  # one counter per node
    sent = record["sent_bytes_per_step"]
    # Each node's interface carries the ring's payload plus a TCP/IP/Ethernet header per MTU-sized
    # frame, plus ACKs and Ray's control traffic: within 3% of what the MTU implies.
    assert record["wire_ratio"] / record["wire_overhead_expected"] == pytest.approx(1.0, abs=0.03)
    assert sent == 4 * 1_248_424
    assert not any(re.match(r"cb\d+n\d+$", n) for n in namespaces() - before)  # all torn down
    # W&B: one offline run, logged by the driver outside the cluster, with the wire figures.
    [run] = wandb_runs(tmp_path)
    assert run["tags"][:3] == ["squeezenet", "nodes=2", "emulated"]
    assert run["summary"]["wire_ratio"] == record["wire_ratio"]
    assert run["summary"]["wire_bytes_per_step"] == pytest.approx(sum(record["wire_bytes_per_step"]) / 2)


@root
@pytest.mark.slow
def test_ctrl_c_tears_the_cluster_down(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "commbench", "model=squeezenet", "nodes=2", "cluster=emulated",
                             "steps=500", f"results_dir={tmp_path}"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    mine = re.compile(rf"cb{proc.pid}n\d+$")
    deadline = time.time() + 120
    while time.time() < deadline and not any(mine.match(n) for n in namespaces()):
        time.sleep(0.5)
    assert any(mine.match(n) for n in namespaces()), "the cluster never came up"
    time.sleep(5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert not any(mine.match(n) for n in namespaces())
    assert subprocess.run(["ip", "link", "show", f"cb{proc.pid}br"], capture_output=True).returncode != 0


@root
@pytest.mark.slow
def test_partitioned_node_fails_the_run_with_a_timeout_and_tears_down(tmp_path):
    """One node's link cut mid-run (its veth down: a partition; loss would need netem, which this
    kernel lacks): the run fails within the collective timeout plus Ray's detection, says so in one
    line, records the failure, and the cluster is torn down."""
    proc = subprocess.Popen([sys.executable, "-m", "commbench", "model=squeezenet1_1", "nodes=2", "cluster=emulated",
                             "steps=2000", "batch_size=4", "image_size=32", "collective_timeout_s=15",
                             f"results_dir={tmp_path}"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    mine = re.compile(rf"cb{proc.pid}n\d+$")
    deadline = time.time() + 180
    while time.time() < deadline and not (tmp_path / "ray").exists():  # the trainer has started
        time.sleep(0.5)
    time.sleep(15)  # into the timed steps
    cut = time.monotonic()
    subprocess.run(["ip", "link", "set", f"cb{proc.pid}v1", "down"], check=True)
    out, err = proc.communicate(timeout=240)
    detected = time.monotonic() - cut
    assert proc.returncode == 2, (out[-2000:], err[-3000:])
    [line] = [l for l in err.splitlines() if l.startswith("commbench: error:")]
    assert line.startswith("commbench: error: squeezenet1_1 nodes=2: training failed: "), line
    assert detected < 15 + 90, detected
    [record] = json.loads((tmp_path / "runs.jsonl").read_text().splitlines()[-1]),
    assert record["status"] == "failed" and record["error"] in line
    assert not any(mine.match(n) for n in namespaces())
    print(f"partition detected after {detected:.1f} s: {line}")
