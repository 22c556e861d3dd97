"""An emulated cluster on one machine: one network namespace per node, joined by a Linux bridge
through veth pairs, each node's link shaped with tc; a Ray head in the first namespace and a Ray
worker node in each other. Torn down on exit, failure and Ctrl-C; a crashed run's leftovers are
found by the owner PID in their names and removed on the next start.

Every address lives inside namespaces (and the bridge) this module created.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

IFNAME = "cbeth0"  # the same name in every namespace: gloo needs GLOO_SOCKET_IFNAME
RAY_PORT = 6379
NAME = re.compile(r"^cb(\d+)n(\d+)$")  # namespace cb<owner pid>n<node>
BRIDGE = re.compile(r"^cb(\d+)br$")


class ClusterError(RuntimeError):
    """The emulated cluster could not be built; str() is one line."""


def run(*cmd: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    out = subprocess.run(full, capture_output=True, text=True, timeout=60)
    if check and out.returncode != 0:
        raise ClusterError(f"`{' '.join(full)}` failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return out


def preflight() -> None:
    """Root, iproute2's `ip` and `tc`, and ethtool: said in one line before anything is created."""
    if os.geteuid() != 0:
        raise ClusterError("cluster=emulated needs root (network namespaces, veth, bridge, tc); run as root")
    for tool in ("ip", "tc", "ethtool"):
        if shutil.which(tool) is None:
            package = "ethtool" if tool == "ethtool" else "iproute2"
            raise ClusterError(f"cluster=emulated needs `{tool}` (Debian: apt-get install {package})")


def netem_available() -> bool:
    """Is the netem qdisc (delay, loss) built into this kernel? Tried on a throwaway namespace's lo."""
    probe = f"cbprobe{os.getpid()}"
    run("ip", "netns", "add", probe)
    try:
        return run("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False, ns=probe).returncode == 0
    finally:
        run("ip", "netns", "del", probe, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def node_temp_dir(ns: str) -> str:
    return f"/tmp/ray-{ns}"


def remove_temp_dir(ns: str) -> None:
    shutil.rmtree(node_temp_dir(ns), ignore_errors=True)


def clean_stale() -> list[str]:
    """Remove namespaces and bridges whose owning commbench process is gone; returns their names."""
    removed = []
    for line in run("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = NAME.match(name)
        if m and not _alive(int(m.group(1))):
            kill_namespace_processes(name)
            run("ip", "netns", "del", name, check=False)
            remove_temp_dir(name)
            removed.append(name)
    for line in run("ip", "-o", "link", "show", "type", "bridge").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        m = BRIDGE.match(name)
        if m and not _alive(int(m.group(1))):
            run("ip", "link", "del", name, check=False)
            removed.append(name)
    if shutil.which("iptables"):
        for rule in run("iptables", "-S", "FORWARD", check=False).stdout.splitlines():
            m = re.search(r"-i (cb(\d+)br) ", rule)
            if m and not _alive(int(m.group(2))):
                forget_forwarding(m.group(1))
    return removed


def kill_namespace_processes(ns: str) -> None:
    """`ray stop` is not namespace-aware (it stops every Ray process on the machine): kill by PID."""
    pids = [int(p) for p in run("ip", "netns", "pids", ns, check=False).stdout.split()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGTERM:
            deadline = time.time() + 5
            while time.time() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.1)


def _forward_rule(bridge: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def allow_forwarding(bridge: str) -> None:
    """Bridged frames pass the host's iptables FORWARD chain (br_netfilter), whose policy may be DROP
    (Docker sets it): accept what stays on our bridge, for as long as the bridge exists."""
    if shutil.which("iptables"):
        run("iptables", "-I", *_forward_rule(bridge))


def forget_forwarding(bridge: str) -> None:
    if shutil.which("iptables"):
        while run("iptables", "-D", *_forward_rule(bridge), check=False).returncode == 0:
            pass


def wire_sized_frames(dev: str, ns: str | None = None) -> None:
    """Turn off segmentation offloads, as a physical NIC sends MTU-sized frames: otherwise a veth
    carries 64 KB super-packets with one header each, and its byte counters hide the per-frame
    TCP/IP overhead a real link pays."""
    run("ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", ns=ns)


@dataclass
class Link:
    bandwidth_bits_per_s: float | None = None
    latency_s: float | None = None
    loss_percent: float | None = None

    def needs_netem(self) -> bool:
        return bool(self.latency_s) or bool(self.loss_percent)


def shape(dev: str, link: Link, ns: str | None = None) -> None:
    """Egress shaping of one interface: htb for the rate, netem under it for delay and loss."""
    if link.bandwidth_bits_per_s:
        rate = f"{int(link.bandwidth_bits_per_s)}bit"
        run("tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10", ns=ns)
        run("tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", rate, "ceil", rate, ns=ns)
        parent = ["parent", "1:10", "handle", "10:"]
    else:
        parent = ["root"]
    if link.needs_netem():
        netem = ["netem"]
        if link.latency_s:
            netem += ["delay", f"{link.latency_s * 1e6:.0f}us"]
        if link.loss_percent:
            netem += ["loss", f"{link.loss_percent}%"]
        run("tc", "qdisc", "add", "dev", dev, *parent, *netem, ns=ns)


@dataclass
class EmulatedCluster:
    nodes: int
    link: Link
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
            shape(IFNAME, self.link, ns=ns)  # what the node sends
            shape(veth, self.link)  # what the node receives

    def env(self) -> dict[str, str]:
        return {**os.environ, "RAY_AUTH_MODE": "disabled", "GLOO_SOCKET_IFNAME": IFNAME,
                "RAY_USAGE_STATS_ENABLED": "0"}

    def temp_dir(self, i: int) -> list[str]:
        """Ray's unix sockets live in its temp dir, in the file system the namespaces share: nodes
        starting together in one temp dir bind the same socket path ("Address already in use")."""
        return [f"--temp-dir={node_temp_dir(self.ns(i))}"]

    def start_ray(self) -> None:
        head = ["ray", "start", "--head", f"--node-ip-address={self.ip(0)}", f"--port={RAY_PORT}",
                "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats", *self.temp_dir(0), "--block"]
        self.procs.append(self._popen(0, head))
        wait_for_port(self.ns(0), self.ip(0), RAY_PORT)
        for i in range(1, self.nodes):
            self.procs.append(self._popen(i, ["ray", "start", f"--address={self.address}", f"--node-ip-address={self.ip(i)}",
                                              "--num-cpus=1", *self.temp_dir(i), "--block"]))

    def _popen(self, i: int, cmd: list[str]) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns(i), *cmd], env=self.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

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
        cmd = ["ip", "netns", "exec", self.ns(0), sys.executable, "-m", "commbench", *argv]
        return subprocess.run(cmd, env={**self.env(), **extra_env}).returncode


def forget_current_cluster(address: str, path: str = "/tmp/ray/ray_current_cluster") -> None:
    """`ray start --head` names itself the machine's current cluster; a later plain `ray.init()` would
    try to join this one after it is gone."""
    try:
        if open(path).read().strip() == address:
            os.remove(path)
    except OSError:
        pass


def wait_for_port(ns: str, host: str, port: int, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    probe = f"import socket; socket.create_connection(('{host}', {port}), timeout=1).close()"
    while time.time() < deadline:
        if run("python3", "-c", probe, check=False, ns=ns).returncode == 0:
            return
        time.sleep(0.5)
    raise ClusterError(f"the Ray head in {ns} did not listen on {host}:{port} within {timeout_s:.0f} s")


def interface_bytes(ifname: str) -> dict[str, int] | None:
    """tx/rx byte counters of an interface in this process's network namespace (/proc/net/dev)."""
    try:
        lines = open("/proc/net/dev").read().splitlines()[2:]
    except OSError:
        return None
    for line in lines:
        name, _, data = line.partition(":")
        if name.strip() == ifname:
            fields = data.split()
            return {"rx": int(fields[0]), "tx": int(fields[8])}
    return None


INSIDE_ENV = "COMMBENCH_EMULATED_ADDRESS"  # set for the driver re-run inside the head's namespace


def inside_address() -> str | None:
    """The emulated cluster's Ray address when this process is the driver inside its head's namespace."""
    return os.environ.get(INSIDE_ENV) or None


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


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
    with sigterm_as_interrupt(), EmulatedCluster(plan.nodes, link) as cluster:
        return cluster.run_inside(argv, {INSIDE_ENV: cluster.address})


def wire_overhead(mtu: int) -> float:
    """Bytes on the wire per byte of TCP payload for full-size segments: Ethernet header 14,
    IPv4 20, TCP with timestamps 32 (what /proc/net/dev counts; no preamble or FCS)."""
    return (mtu + 14) / (mtu - 20 - 32)


def interface_mtu(ifname: str) -> int:
    try:
        return int(open(f"/sys/class/net/{ifname}/mtu").read())
    except (OSError, ValueError):
        return 1500
