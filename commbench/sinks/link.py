"""What the terminal shows of an emulated cluster's link: its settings, the wire bytes a run's nodes
sent against what headers and ACKs predict, and the TCP goodput a busbw sweep is read against."""

from __future__ import annotations

from typing import Any


def fmt_rate(bits_per_s: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits_per_s >= scale:
            return f"{bits_per_s / scale:g} {unit}"
    return f"{bits_per_s:g} bit/s"


def link_desc(record: dict[str, Any]) -> str:
    """The link as configured: rate, then latency and loss where set."""
    parts = [fmt_rate(record["bandwidth_bits_per_s"]) if record.get("bandwidth_bits_per_s") else "unshaped"]
    if record.get("latency_s"):
        parts.append(f"latency {record['latency_s'] * 1e3:g} ms")
    if record.get("loss_percent"):
        parts.append(f"loss {record['loss_percent']:g}%")
    return ", ".join(parts)


def link_rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows of a run's table on an emulated cluster (none elsewhere)."""
    if record.get("cluster_kind") != "emulated":
        return []
    rows = [("emulated link", link_desc(record))]
    if record.get("wire_bytes_per_step"):
        ratio = f": {record['wire_ratio']:.3f}x the bytes sent" if record.get("wire_ratio") else ""
        rows.append(("wire tx per node / step", ", ".join(f"{b / 1e6:.2f} MB" for b in record["wire_bytes_per_step"])
                     + ratio + f" (expected {record['wire_overhead_expected']:.3f}x: headers and ACKs at MTU "
                               f"{record['wire_mtu']})"))
    return rows


def goodput_notes(record: dict[str, Any]) -> list[str]:
    """A busbw table's caption line: the link's single-stream TCP goodput, the ceiling beside busbw."""
    goodput = record.get("goodput")
    if not goodput:
        return []
    link = link_desc(record)
    if not goodput.get("bytes_per_s"):
        return [f"link {link}: goodput not measured ({goodput.get('error', 'no bytes arrived')})"]
    share = (f", {8 * goodput['bytes_per_s'] / record['bandwidth_bits_per_s']:.1%} of the link rate"
             if record.get("bandwidth_bits_per_s") else "")
    return [f"link {link}: one TCP stream rank 0 -> 1 carried {goodput['bytes_per_s'] / 1e9:.4f} GB/s of payload "
            f"({goodput['bytes'] / 1e6:.1f} MB in {goodput['seconds']:.2f} s{share}); of goodput: busbw / that"]
