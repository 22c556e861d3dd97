"""Bytes on a node's network interface (its /proc/net/dev counters), and what TCP/IP framing and ACKs
should add to the payload: the wire figures of a run on a cluster whose workers have a real interface."""

from __future__ import annotations


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


# Bytes /proc/net/dev counts per frame beyond the TCP payload: Ethernet header 14, IPv4 20, TCP with
# timestamps 32 (no preamble, FCS or gap); a pure ACK is those headers alone.
ETH, IP_TCP = 14, 20 + 32
ACK_BYTES = ETH + IP_TCP  # 66
# What an Ethernet wire carries per frame that the counters leave out: preamble and start delimiter 8,
# FCS 4, inter-frame gap 12. A real link's time goes to them too (and the emulated htb charges them).
FRAME_EXTRA = 24


def header_overhead(mtu: int) -> float:
    """Bytes on the wire per byte of TCP payload sent in full-size segments: (MTU + 14) / (MTU - 52)."""
    return (mtu + ETH) / (mtu - IP_TCP)


def wire_overhead(mtu: int) -> float:
    """A node's transmitted bytes per byte of payload it sends, when it receives as much as it sends
    (every node of a ring all-reduce or all-gather):

        tx / payload = (MTU + 14) / (MTU - 52) + 66 / (2 (MTU - 52))

    Its own data: payload / (MTU - 52) full segments of MTU + 14 bytes each. The ACKs for the data it
    receives leave on the same interface: with delayed ACKs one pure 66-byte ACK per two full
    segments received, and it receives payload / (MTU - 52) of them. At MTU 1500: 1.0456 + 0.0228 =
    1.0684. Measured (squeezenet, nodes=2, 100 Mbit/s, 2 steps): 1.067 on the worker node; 1.080 on
    the head, which also sends Ray's control traffic. The headers alone (1.0456) leave 2% unexplained."""
    return header_overhead(mtu) + ACK_BYTES / (2 * (mtu - IP_TCP))


def link_overhead(mtu: int) -> float:
    """Link time per byte of payload, in bytes at the link's rate: wire_overhead with FRAME_EXTRA on
    every data frame and ACK. At MTU 1500: (1538 + 90 / 2) / 1448 = 1.0932; one TCP stream's goodput
    is at most 1448 / 1538 = 94.1% of the rate (measured: 94.0% of a 100 Mbit/s emulated link)."""
    return (mtu + ETH + FRAME_EXTRA + (ACK_BYTES + FRAME_EXTRA) / 2) / (mtu - IP_TCP)


def interface_mtu(ifname: str) -> int:
    try:
        return int(open(f"/sys/class/net/{ifname}/mtu").read())
    except (OSError, ValueError):
        return 1500
