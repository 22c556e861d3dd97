"""A link's TCP goodput: one stream of bounded bytes and time from rank 0 to rank 1 over their
interfaces, measured beside the busbw sweep of an emulated cluster: the ceiling its busbw is read
against (a single TCP stream does not fill a shaped link: ~95% of 100 Mbit/s, ~65% of 1 Gbit/s on
2 shared cores, by iperf3)."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import time
from typing import Any

CHUNK = 1 << 20
SIOCGIFADDR = 0x8915


def interface_ipv4(ifname: str) -> str | None:
    """The IPv4 address of an interface in this network namespace (None without one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def send(addr: tuple[str, int], max_bytes: int, max_s: float, timeout_s: float) -> None:
    """Send zeros until max_bytes are out or max_s has passed, then close (the receiver's EOF)."""
    buf = bytes(CHUNK)
    with socket.create_connection(addr, timeout=timeout_s) as s:
        deadline, sent = time.monotonic() + max_s, 0
        while sent < max_bytes and time.monotonic() < deadline:
            s.sendall(buf[:min(CHUNK, max_bytes - sent)])
            sent += min(CHUNK, max_bytes - sent)


def receive(server: socket.socket, timeout_s: float) -> dict[str, Any]:
    """Read one stream to its end. Timed from its first byte, so the connection's set-up is left out."""
    server.settimeout(timeout_s)
    conn, _ = server.accept()
    with conn:
        conn.settimeout(timeout_s)
        first = conn.recv(CHUNK)
        t0, n = time.perf_counter(), 0
        while chunk := conn.recv(CHUNK):
            n += len(chunk)
        seconds = time.perf_counter() - t0
    return {"bytes": n + len(first), "seconds": seconds, "bytes_per_s": n / seconds if seconds > 0 else None}


def link_goodput(max_bytes: int = 256 << 20, max_s: float = 3.0, timeout_s: float = 15.0) -> dict[str, Any] | None:
    """Call on every rank of the group: rank 1 listens on its interface (GLOO_SOCKET_IFNAME), rank 0
    streams to it; every rank returns rank 1's figures, or {"error": ...} for a stream that failed
    (every socket call under timeout_s: it never hangs). None without an interface to measure."""
    import torch.distributed as dist

    rank, ifname = dist.get_rank(), os.environ.get("GLOO_SOCKET_IFNAME")
    ip = interface_ipv4(ifname) if ifname else None
    server, where = None, [None]
    if rank == 1 and ip:
        server = socket.create_server((ip, 0))
        where = [(ip, server.getsockname()[1])]
    dist.broadcast_object_list(where, src=1)
    if where[0] is None:
        return None
    result: list[Any] = [None]
    try:
        if rank == 0:
            send(where[0], max_bytes, max_s, timeout_s)
        elif rank == 1:
            result = [receive(server, timeout_s + max_s)]
    except OSError as exc:  # socket.timeout included
        result = [{"error": f"{type(exc).__name__}: {exc}"}]
    finally:
        if server is not None:
            server.close()
    dist.broadcast_object_list(result, src=1)
    return result[0]


def busbw_with_goodput(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Ray worker function: the link's goodput (rank 0 -> 1), then the busbw sweep; rank 0 returns
    {"rows": busbw rows, "goodput": figures}."""
    from commbench.comm.busbw import busbw_loop
    from commbench.comm.group import join_group

    join_group(cfg)
    goodput = link_goodput(**cfg.get("goodput", {}))
    rows = busbw_loop(cfg)
    return None if rows is None else {"rows": rows, "goodput": goodput}
