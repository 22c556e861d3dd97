"""An emulated cluster on one machine: one network namespace per node, joined by a Linux bridge
through veth pairs, each node's link shaped with tc; a Ray head in the first namespace and a Ray
worker node in each other. Torn down on exit, failure and Ctrl-C; a crashed run's leftovers are
found by the owner PID in their names and removed on the next start.

Every address lives inside namespaces (and the bridge) this module created.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from commbench.cluster.netns import (  # noqa: F401 - preflight, netem_available, clean_stale: the cluster's API
    ClusterError, Link, allow_forwarding, clean_stale, forget_forwarding, in_ns, kill_namespace_processes,
    netem_available, node_temp_dir, preflight, remove_temp_dir, run, shape, wire_sized_frames)
from commbench.errors import interrupt

IFNAME = "cbeth0"  # the same name in every namespace: gloo needs GLOO_SOCKET_IFNAME
RAY_PORT = 6379


@dataclass
class EmulatedCluster:
    nodes: int
    link: Link
    log_dir: Path | None = None  # each node's Ray output: <log_dir>/node<i>.log
    owner: int = field(default_factory=os.getpid)
    procs: list[subprocess.Popen] = field(default_factory=list)

    # ---- names and addresses (10.231.<a>.<b>/24, unique per owner PID)
    def ns(self, i: int) -> str:
        return f"cb{self.owner}n{i}"

    @property
    def bridge(self) -> str:
        return f"cb{self.owner}br"

    def host_veth(self, i: int) -> str:
        return f"cb{self.owner}v{i}"

    @property
    def subnet(self) -> str:
        return f"10.231.{self.owner % 250}"

    def ip(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    @property
    def address(self) -> str:
        return f"{self.ip(0)}:{RAY_PORT}"

    # ---- lifecycle
    def __enter__(self) -> "EmulatedCluster":
        preflight()
        clean_stale()
        if self.link.needs_netem() and not netem_available():
            raise ClusterError("network.latency/network.loss need the netem qdisc, which this kernel lacks "
                               "(rate shaping with network.bandwidth works)")
        try:
            self.build_network()
            self.start_ray()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def build_network(self) -> None:
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "link", "set", self.bridge, "up")
        allow_forwarding(self.bridge)
        for i in range(self.nodes):
            ns, veth = self.ns(i), self.host_veth(i)
            run("ip", "netns", "add", ns)
            run("ip", "link", "add", veth, "type", "veth", "peer", "name", IFNAME, "netns", ns)
            run("ip", "link", "set", veth, "master", self.bridge, "up")
            run("ip", "addr", "add", f"{self.ip(i)}/24", "dev", IFNAME, ns=ns)
            run("ip", "link", "set", IFNAME, "up", ns=ns)
            run("ip", "link", "set", "lo", "up", ns=ns)
            wire_sized_frames(IFNAME, ns=ns)
            wire_sized_frames(veth)
            shape(IFNAME, self.link, ns=ns)  # what the node sends: rate, delay, loss
            shape(veth, self.link, netem=False)  # what the node receives: rate (delayed at its sender)

    def env(self) -> dict[str, str]:
        return {**os.environ, "RAY_AUTH_MODE": "disabled", "GLOO_SOCKET_IFNAME": IFNAME,
                "RAY_USAGE_STATS_ENABLED": "0"}

    def temp_dir(self, i: int) -> list[str]:
        """Ray's unix sockets live in its temp dir, in the file system the namespaces share: nodes
        starting together in one temp dir bind the same socket path ("Address already in use")."""
        return [f"--temp-dir={node_temp_dir(self.ns(i))}"]

    def start_ray(self) -> None:
        ray = ray_command()
        head = [*ray, "start", "--head", f"--node-ip-address={self.ip(0)}", f"--port={RAY_PORT}",
                "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats", *self.temp_dir(0), "--block"]
        self.procs.append(self._popen(0, head))
        wait_for_port(self.ns(0), self.ip(0), RAY_PORT, self.procs[0], self.log(0))
        for i in range(1, self.nodes):
            self.procs.append(self._popen(i, [*ray, "start", f"--address={self.address}", f"--node-ip-address={self.ip(i)}",
                                              "--num-cpus=1", *self.temp_dir(i), "--block"]))

    def log(self, i: int) -> Path | None:
        return self.log_dir / f"node{i}.log" if self.log_dir else None

    def _popen(self, i: int, cmd: list[str]) -> subprocess.Popen:
        path = self.log(i)
        if path is None:
            return subprocess.Popen(in_ns(self.ns(i), cmd), env=self.env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(in_ns(self.ns(i), cmd), env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def show_dead_nodes(self) -> None:
        """After a failed driver: the log tail of every node whose Ray exited (why a node never joined)."""
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                print_tail(self.log(i), f"node {i}'s Ray exited with code {p.returncode}")

    def down(self) -> None:
        with signals_ignored():  # a second Ctrl-C must not leave half a cluster behind
            self._down()

    def _down(self) -> None:
        for i in range(self.nodes):
            kill_namespace_processes(self.ns(i))
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for i in range(self.nodes):
            run("ip", "netns", "del", self.ns(i), check=False)
            remove_temp_dir(self.ns(i))
        run("ip", "link", "del", self.bridge, check=False)
        forget_forwarding(self.bridge)
        forget_current_cluster(self.address)

    def run_inside(self, argv: list[str], extra_env: dict[str, str]) -> int:
        """Run a commbench command as the driver on the head node (Ray drivers must run on a node)."""
        cmd = in_ns(self.ns(0), [sys.executable, "-m", "commbench", *argv])
        # PYTHONFAULTHANDLER: a crash of the driver (seen at exit, after its record) prints its stacks.
        code = subprocess.run(cmd, env={**self.env(), "PYTHONFAULTHANDLER": "1", **extra_env}).returncode
        if code:
            self.show_dead_nodes()
        return code


def ray_command() -> list[str]:
    """The Ray of the Python running commbench, not whichever `ray` PATH finds (if any): run as
    /venv/bin/python -m commbench from cron or a Makefile, PATH holds no venv."""
    beside = Path(sys.executable).parent / "ray"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", "ray.scripts.scripts"]  # ray's CLI module, for installs without the script


def print_tail(path: Path | None, what: str, lines: int = 15) -> None:
    if path is None or not path.exists():
        return
    tail = path.read_text(errors="replace").splitlines()[-lines:]
    print(f"{what}; the last lines of {path}:", *(f"  {line}" for line in tail), sep="\n", file=sys.stderr)


def forget_current_cluster(address: str, path: str = "/tmp/ray/ray_current_cluster") -> None:
    """`ray start --head` names itself the machine's current cluster; a later plain `ray.init()` would
    try to join this one after it is gone."""
    try:
        if open(path).read().strip() == address:
            os.remove(path)
    except OSError:
        pass


def wait_for_port(ns: str, host: str, port: int, head: subprocess.Popen | None = None, log: Path | None = None,
                  timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    probe = f"import socket; socket.create_connection(('{host}', {port}), timeout=1).close()"
    while time.time() < deadline:
        if head is not None and head.poll() is not None:  # no use waiting for a head that is gone
            print_tail(log, f"the Ray head exited with code {head.returncode}")
            raise ClusterError(f"the Ray head in {ns} exited with code {head.returncode} before listening"
                               + (f" (its output: {log})" if log else ""))
        if run(sys.executable, "-c", probe, check=False, ns=ns).returncode == 0:
            return
        time.sleep(0.5)
    print_tail(log, "the Ray head did not listen")
    raise ClusterError(f"the Ray head in {ns} did not listen on {host}:{port} within {timeout_s:.0f} s"
                       + (f" (its output: {log})" if log else ""))


INSIDE_ENV = "COMMBENCH_EMULATED_ADDRESS"  # set for the driver re-run inside the head's namespace


def inside_address() -> str | None:
    """The emulated cluster's Ray address when this process is the driver inside its head's namespace."""
    return os.environ.get(INSIDE_ENV) or None


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM tears the cluster down like Ctrl-C does, instead of killing this process mid-way."""
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_ignored():
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_emulated(plan, argv: list[str]) -> int:
    """Build the cluster for `plan`, run `python -m commbench <argv>` as its driver, tear it down."""
    link = Link(plan.bandwidth_bits_per_s, plan.latency_s, plan.loss_percent)
    with sigterm_as_interrupt(), EmulatedCluster(plan.nodes, link, Path(plan.results_dir) / "emulated") as cluster:
        return cluster.run_inside(argv, {INSIDE_ENV: cluster.address})
