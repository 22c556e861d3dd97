"""The emulated cluster: namespaces, bridge, tc shaping, Ray nodes inside, wire bytes, teardown.

Needs root, iproute2 (`ip`, `tc`) and ethtool; skipped otherwise, with the preflight's line naming
what is missing. Whole-cluster runs are marked slow.

Marked slow: a whole emulated run started with PATH=/usr/bin:/bin (what cron and systemd give) whose
wire bytes match the ACK-inclusive expectation; busbw with the link's single-stream goodput; Ctrl-C tearing
the cluster down; a node cut off mid-run and one cut off while the workers start, each failing the run in one
line and tearing the cluster down. launch/README.md, "The emulated cluster", has what they measured.
"""

from __future__ import annotations

import json
import functools
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
from commbench.comm.goodput import busbw_with_goodput, interface_ipv4, link_goodput
from commbench.framing import ETH, FRAME_EXTRA, IP_TCP, header_overhead, link_overhead, wire_overhead
from commbench.sinks.console import busbw_table
from commbench.sinks.link import link_rows
from tests.ddp_harness import spawn, worker_config
from tests.test_faults import start, wait_for_line
from tests.wandb_files import runs as wandb_runs

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def cannot_emulate() -> str | None:
    """Why this machine cannot build an emulated cluster (root, ip, tc, ethtool: the preflight's own line)."""
    from commbench.cluster.netns import ClusterError, preflight

    try:
        preflight()
    except ClusterError as exc:
        return str(exc)
    return None


root = pytest.mark.skipif(cannot_emulate() is not None, reason=str(cannot_emulate()))


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


CRON_PATH = "/usr/bin:/bin"  # what cron, systemd units and Makefiles give: no venv, no sbin


def commbench(*args: str, timeout: float = 600, path: str | None = None):
    env = {**os.environ, "PATH": path} if path else None
    return subprocess.run([sys.executable, "-m", "commbench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_wire_overhead_of_full_tcp_segments_and_their_acks():
    assert header_overhead(1500) == pytest.approx(1514 / 1448)
    assert header_overhead(9000) == pytest.approx(9014 / 8948)
    # Plus one 66-byte ACK (14 + 20 + 32) per two full segments received, as many as it sends.
    assert wire_overhead(1500) == pytest.approx(1514 / 1448 + 66 / (2 * 1448))
    assert wire_overhead(1500) == pytest.approx(1.0684, abs=1e-4)
    # The link's time adds preamble, FCS and gap (24 B) to every frame, data and ACK alike.
    assert link_overhead(1500) == pytest.approx((1538 + 90 / 2) / 1448)


def test_ray_is_the_one_beside_the_python_running_commbench(monkeypatch, tmp_path):
    (tmp_path / "python").touch()
    monkeypatch.setattr(emulated.sys, "executable", str(tmp_path / "python"))
    assert emulated.ray_command() == [str(tmp_path / "python"), "-m", "ray.scripts.scripts"]  # no script there
    (tmp_path / "ray").write_text("#!/bin/sh\n")
    (tmp_path / "ray").chmod(0o755)
    monkeypatch.setenv("PATH", CRON_PATH)
    assert emulated.ray_command() == [str(tmp_path / "ray")]


def test_ray_cli_module_runs_without_path():
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "--version"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": CRON_PATH}, timeout=120)
    assert out.returncode == 0 and "version" in out.stdout


def test_root_tools_are_found_in_sbin_without_it_in_path():
    assert {"/usr/sbin", "/sbin"} <= set(netns.TOOL_PATH.split(os.pathsep))
    if Path("/usr/sbin/ip").exists():
        assert netns.in_ns("cb1n0", ["tc", "qdisc"])[0::4] == ["/usr/sbin/ip", "/usr/sbin/tc"]


def test_netem_once_per_direction_htb_counts_frame_overhead(monkeypatch):
    commands = []
    monkeypatch.setattr(netns, "run", lambda *cmd, ns=None, check=True: commands.append((ns, cmd)))
    for name in ("run", "allow_forwarding", "wire_sized_frames"):
        monkeypatch.setattr(emulated, name, lambda *a, **k: None)
    link = Link(bandwidth_bits_per_s=1e9, latency_s=0.01, loss_percent=1.0)
    EmulatedCluster(2, link, owner=7).build_network()
    netem = [(ns, cmd) for ns, cmd in commands if "netem" in cmd]
    # A path crosses the sender's interface and the receiver's veth: delay and loss on the first only.
    assert [(ns, cmd[cmd.index("dev") + 1]) for ns, cmd in netem] == [("cb7n0", "cbeth0"), ("cb7n1", "cbeth0")]
    limit = int(netem[0][1][netem[0][1].index("limit") + 1])
    assert limit >= 1000 + 1.5 * 1e9 * 0.01 / 8 / 1538  # a bandwidth-delay product of frames, and ACKs
    classes = [cmd for _, cmd in commands if "class" in cmd]
    assert len(classes) == 4 and all(c[-4:] == ("overhead", "24", "mpu", "84") for c in classes)


def test_goodput_stream_between_two_ranks(monkeypatch, tmp_path):
    assert interface_ipv4("lo") == "127.0.0.1" and interface_ipv4("cbnothere") is None
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    cfg = {**worker_config(["nodes=2"], str(tmp_path)), "sizes": [1024], "iters": 2, "warmup_iters": 1,
           "goodput": {"max_bytes": 8 << 20, "max_s": 5.0}}
    out = spawn(busbw_with_goodput, 2, cfg)
    assert [r["bytes"] for r in out["rows"]] == [1024]
    assert out["goodput"]["bytes"] == 8 << 20 and out["goodput"]["bytes_per_s"] > 0


def test_goodput_needs_an_interface(monkeypatch):
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    assert spawn(link_goodput, 2) is None


def test_console_shows_the_link_wire_bytes_and_goodput():
    run = {"cluster_kind": "emulated", "bandwidth_bits_per_s": 100e6, "latency_s": 0.0005, "loss_percent": None,
           "wire_bytes_per_step": [5.33e6, 5.34e6], "wire_ratio": 1.066, "wire_overhead_expected": 1.0684,
           "wire_mtu": 1500}
    assert link_rows(run) == [("emulated link", "100 Mbit/s, latency 0.5 ms"),
                              ("wire tx per node / step", "5.33 MB, 5.34 MB: 1.066x the bytes sent "
                               "(expected 1.068x: headers and ACKs at MTU 1500)")]
    assert link_rows({"cluster_kind": "local"}) == []
    busbw = {**run, "nodes": 2, "rows": [{"bytes": 2**20, "iters": 3, "time_s": 0.2, "algbw": 5.2e6, "busbw": 5.2e6}],
             "goodput": {"bytes": 37e6, "seconds": 3.0, "bytes_per_s": 11.8e6}, "goodput_bytes_per_s": 11.8e6}
    table = busbw_table(busbw)
    assert table.columns[-1].header == "of goodput" and list(table.columns[-1].cells) == ["44%"]
    assert "one TCP stream rank 0 -> 1 carried 0.0118 GB/s" in table.caption and "94.4% of the link rate" in table.caption


def test_without_root_one_clear_line(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(ClusterError, match="cluster=emulated needs root"):
        emulated.preflight()


def test_without_tc_one_clear_line(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda tool, path=None: None if tool == "tc" else "/usr/sbin/ip")
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
def test_links_are_shaped_and_torn_down(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", CRON_PATH)  # no venv and no sbin: Ray and ip/tc are found all the same
    with EmulatedCluster(2, Link(bandwidth_bits_per_s=100e6), log_dir=tmp_path) as cluster:
        qdisc = subprocess.run(netns.in_ns(cluster.ns(1), ["tc", "-d", "class", "show", "dev", "cbeth0"]),
                               capture_output=True, text=True).stdout
        assert "rate 100Mbit overhead 24" in qdisc
        assert {cluster.ns(0), cluster.ns(1)} <= namespaces()
        deadline = time.time() + 90  # the worker node joined: its log says so
        while time.time() < deadline and "Ray runtime started" not in (tmp_path / "node1.log").read_text():
            time.sleep(0.5)
        assert "Ray runtime started" in (tmp_path / "node1.log").read_text()
        assert "Ray runtime started" in (tmp_path / "node0.log").read_text()
    assert not {cluster.ns(0), cluster.ns(1)} & namespaces()


@root
def test_a_ray_head_that_exits_fails_at_once_with_its_log(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(emulated, "ray_command", lambda: ["sh", "-c", "echo no ray in this venv; exit 3"])
    t0 = time.monotonic()
    with pytest.raises(ClusterError) as exc:
        EmulatedCluster(2, Link(bandwidth_bits_per_s=100e6), log_dir=tmp_path).__enter__()
    assert time.monotonic() - t0 < 30  # not the 60 s wait for a port nobody will open
    assert re.fullmatch(rf"the Ray head in cb\d+n0 exited with code 3 before listening \(its output: "
                        rf"{tmp_path}/node0.log\)", str(exc.value))
    assert "  no ray in this venv" in capsys.readouterr().err
    assert not any(re.match(rf"cb{os.getpid()}n\d+$", n) for n in namespaces())


@root
@pytest.mark.slow
def test_emulated_run_records_wire_bytes(tmp_path):
    before = namespaces()
    out = commbench("model=squeezenet", "nodes=2", "cluster=emulated", "network.bandwidth=100mbit", "steps=2",
                    "warmup=1", "batch_size=4", "image_size=32", f"results_dir={tmp_path}", path=CRON_PATH)
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((tmp_path / "runs.jsonl").read_text().splitlines()[-1])
    assert record["cluster_kind"] == "emulated" and record["bandwidth_bits_per_s"] == 100e6
    assert len(record["wire_bytes_per_step"]) == 2  # one counter per node
    sent = record["sent_bytes_per_step"]
    # Each node's interface carries the ring's payload plus a TCP/IP/Ethernet header per MTU-sized
    # frame and an ACK per two frames received: within 2% of what the MTU implies.
    assert record["wire_overhead_expected"] == pytest.approx(wire_overhead(1500))
    assert record["wire_ratio"] / record["wire_overhead_expected"] == pytest.approx(1.0, abs=0.02)
    assert "wire tx per node / step" in out.stdout and "emulated link" in out.stdout and "100 Mbit/s" in out.stdout
    assert "Ray runtime started" in (tmp_path / "emulated" / "node1.log").read_text()
    assert sent == 4 * 1_248_424
    assert not any(re.match(r"cb\d+n\d+$", n) for n in namespaces() - before)  # all torn down
    # W&B: one offline run, logged by the driver outside the cluster, with the wire figures.
    [run] = wandb_runs(tmp_path)
    assert run["tags"][:3] == ["squeezenet", "nodes=2", "emulated"]
    assert run["summary"]["wire_ratio"] == record["wire_ratio"]
    assert run["summary"]["wire_bytes_per_step"] == pytest.approx(sum(record["wire_bytes_per_step"]) / 2)


@root
@pytest.mark.slow
def test_emulated_busbw_measures_the_links_goodput(tmp_path):
    out = commbench("busbw", "nodes=2", "cluster=emulated", "network.bandwidth=100mbit", "min_bytes=1MiB",
                    "max_bytes=4MiB", "iters=3", "warmup_iters=1", f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((tmp_path / "busbw.jsonl").read_text().splitlines()[-1])
    goodput = record["goodput"]["bytes_per_s"]
    assert record["goodput_bytes_per_s"] == goodput and record["goodput"]["bytes"] > 1e6
    # The shaped link bounds both from above: htb charges 1538 B per frame of 1448 B payload, so one
    # stream carries at most 94.1% of 100 Mbit/s (loopback would give GB/s). A rate misread by
    # bits/bytes would give an eighth. Where in between it lands depends on the machine's load (93-94%
    # here over four runs, 79% once in CI, 52% once in a README run), so it is printed, not asserted.
    ceiling = 12.5e6 * (1500 - IP_TCP) / (1500 + ETH + FRAME_EXTRA)
    assert ceiling / 4 < goodput <= 1.01 * ceiling
    assert all(0 < r["busbw"] <= 1.01 * ceiling for r in record["rows"])
    assert "of goodput" in out.stdout and "one TCP stream rank 0 -> 1" in out.stdout
    print(f"goodput {goodput / 1e6:.2f} MB/s ({8 * goodput / 100e6:.1%} of 100 Mbit/s); busbw "
          + ", ".join(f"{r['busbw'] / 1e6:.2f}" for r in record["rows"]) + " MB/s")


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


def cut_link_at(phase: str, tmp_path: Path) -> tuple[subprocess.Popen, str, str, float]:
    """Run squeezenet1_1 on two emulated nodes and take node 1's veth down (a partition; loss would
    need netem, which this kernel lacks) once the driver prints `phase`; the exit status, the output
    after that line, and the seconds from the cut to the exit. Cut at a phase seen, not after a
    sleep: on a slow host the workers may still be starting when a fixed delay ends."""
    proc = start("model=squeezenet1_1", "nodes=2", "cluster=emulated", "steps=100000", "batch_size=4",
                 "image_size=32", "collective_timeout_s=15", f"results_dir={tmp_path / 'results'}")
    try:
        wait_for_line(proc, phase, 300)
        cut = time.monotonic()
        subprocess.run(["ip", "link", "set", f"cb{proc.pid}v1", "down"], check=True)
        out, err = proc.communicate(timeout=240)
    finally:  # a test that failed leaves no 100000-step run holding the cores
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return proc, out, err, time.monotonic() - cut


def assert_failed_and_torn_down(proc: subprocess.Popen, out: str, err: str, tmp_path: Path) -> str:
    """Exit status 2, one error line, the failure recorded, no namespace left; the error line."""
    assert proc.returncode == 2, (out[-2000:], err[-3000:])
    [line] = [l for l in err.splitlines() if l.startswith("commbench: error:")]
    assert line.startswith("commbench: error: squeezenet1_1 nodes=2: training failed: "), line
    [record] = json.loads((tmp_path / "results" / "runs.jsonl").read_text().splitlines()[-1]),
    assert record["status"] == "failed" and record["error"] in line
    assert not any(re.match(rf"cb{proc.pid}n\d+$", n) for n in namespaces())
    return line


@root
@pytest.mark.slow
def test_partitioned_node_fails_the_run_with_a_timeout_and_tears_down(tmp_path):
    """A node cut off mid-run: the run fails within the collective timeout plus Ray's detection."""
    proc, out, err, detected = cut_link_at("timed steps", tmp_path)
    line = assert_failed_and_torn_down(proc, out, err, tmp_path)
    assert detected < 15 + 90, detected
    print(f"partition detected after {detected:.1f} s: {line}")


@root
@pytest.mark.slow
def test_node_lost_while_the_workers_start_fails_the_run_instead_of_waiting(tmp_path):
    """A node cut off before the worker group is up: Ray retries a worker group that failed to start
    without limit by default, so this run waited for the lost node forever (CI, once). Now it
    fails like any lost worker, as a start that failed: Ray's 60 s wait for the group's resources
    plus its detection and the teardown."""
    proc, out, err, detected = cut_link_at("starting 2 worker processes", tmp_path)
    line = assert_failed_and_torn_down(proc, out, err, tmp_path)
    assert "timed steps" not in out  # it never trained
    assert "startup timed out" in line or "failed to initialize" in line, line
    assert detected < 60 + 90, detected
    print(f"node lost while starting: failed after {detected:.1f} s: {line}")
