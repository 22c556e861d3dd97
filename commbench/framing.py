"""What TCP/IP framing and ACKs add to a payload on an Ethernet link: pure arithmetic, a leaf.
The expected wire ratio of a run (record.py) and the link rate a prediction prices (validate) come
from here; comm/wire.py reads the interface counters they are checked against."""

from __future__ import annotations


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
