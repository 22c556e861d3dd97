"""Bytes on a node's network interface (its /proc/net/dev counters) and its MTU: the wire figures of a
run on a cluster whose workers have a real interface (what framing should add: framing.py)."""

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


def interface_mtu(ifname: str) -> int:
    try:
        return int(open(f"/sys/class/net/{ifname}/mtu").read())
    except (OSError, ValueError):
        return 1500
