"""Network namespaces, the bridge between them and tc shaping of their links, as root; and cleaning up
what a crashed run left behind (found by the owner PID in the names). Every address lives inside
namespaces (and the bridge) this package created."""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from commbench.framing import FRAME_EXTRA

NAME = re.compile(r"^cb(\d+)n(\d+)$")  # namespace cb<owner pid>n<node>
BRIDGE = re.compile(r"^cb(\d+)br$")


class ClusterError(RuntimeError):
    """The emulated cluster could not be built; str() is one line."""


# Root's tools live in sbin, which the PATH of cron, systemd units and Makefiles (/usr/bin:/bin) lacks.
TOOL_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def tool(name: str) -> str | None:
    return shutil.which(name, path=TOOL_PATH)


def in_ns(ns: str | None, cmd: list[str]) -> list[str]:
    """`cmd` run inside namespace `ns` (as is where ns is None), its tools found through TOOL_PATH:
    `ip netns exec` looks its command up in the caller's PATH."""
    cmd = [tool(cmd[0]) or cmd[0], *cmd[1:]]
    return [tool("ip") or "ip", "netns", "exec", ns, *cmd] if ns else cmd


def run(*cmd: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    full = in_ns(ns, list(cmd))
    out = subprocess.run(full, capture_output=True, text=True, timeout=60)
    if check and out.returncode != 0:
        raise ClusterError(f"`{' '.join(full)}` failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return out


def preflight() -> None:
    """Root, iproute2's `ip` and `tc`, and ethtool: said in one line before anything is created."""
    if os.geteuid() != 0:
        raise ClusterError("cluster=emulated needs root (network namespaces, veth, bridge, tc); run as root")
    for name in ("ip", "tc", "ethtool"):
        if tool(name) is None:
            package = "ethtool" if name == "ethtool" else "iproute2"
            raise ClusterError(f"cluster=emulated needs `{name}` (Debian: apt-get install {package})")


@functools.cache  # the kernel's qdiscs do not change while commbench runs
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
    if tool("iptables"):
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
    if tool("iptables"):
        run("iptables", "-I", *_forward_rule(bridge))


def forget_forwarding(bridge: str) -> None:
    if tool("iptables"):
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


# htb counts the bytes the kernel does (Ethernet header included): without the 24 B a frame also
# takes on a wire (preamble, FCS, gap) the link runs ~1.6% fast for full frames. MPU: the 60-byte
# minimum frame plus those 24.
FRAME_OVERHEAD, FRAME_MPU = FRAME_EXTRA, 60 + FRAME_EXTRA
NO_RATE_BITS_PER_S = 10e9  # a netem limit for an unshaped link: veths run at memory speed


def netem_limit(link: Link, mtu: int = 1500) -> int:
    """netem's queue (packets) must hold everything in flight during its delay, or it drops silently
    past its default 1000: the data frames of one bandwidth x delay, half as many ACKs for the reverse
    flow, doubled for bursts, plus that default for the backlog htb has not sent yet."""
    frames = (link.bandwidth_bits_per_s or NO_RATE_BITS_PER_S) * (link.latency_s or 0) / 8 / (mtu + 14 + FRAME_OVERHEAD)
    return 1000 + math.ceil(2 * 1.5 * frames)


def shape(dev: str, link: Link, ns: str | None = None, netem: bool = True) -> None:
    """Egress shaping of one interface: htb for the rate, netem under it for delay and loss. A path
    crosses two shaped egresses (the sender's interface, then the receiver's veth on the bridge):
    netem belongs on one of them only, or one-way delay and loss double."""
    if link.bandwidth_bits_per_s:
        rate = f"{int(link.bandwidth_bits_per_s)}bit"
        run("tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10", ns=ns)
        run("tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", rate, "ceil", rate,
            "overhead", str(FRAME_OVERHEAD), "mpu", str(FRAME_MPU), ns=ns)
        parent = ["parent", "1:10", "handle", "10:"]
    else:
        parent = ["root"]
    if netem and link.needs_netem():
        args = ["netem", "limit", str(netem_limit(link))]
        if link.latency_s:
            args += ["delay", f"{link.latency_s * 1e6:.0f}us"]
        if link.loss_percent:
            args += ["loss", f"{link.loss_percent}%"]
        run("tc", "qdisc", "add", "dev", dev, *parent, *args, ns=ns)
