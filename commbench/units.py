"""Units on the command line: link bandwidths (bits/s), latencies (s) and message sizes (bytes).

A leaf: pure stdlib. Every parser raises a ValueError subclass whose str() is one line naming the
setting and showing how to write it.
"""

from __future__ import annotations

import math
import numbers
import re


class NetworkSpecError(ValueError):
    """A network setting that cannot be read; str() is one line naming the setting."""


# ASCII digits only: \d would let float() read Arabic-Indic and other Unicode digits.
_NUMBER_UNIT = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(.*)", re.DOTALL)

_DECIMAL = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BINARY = {"ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30, "ti": 2.0**40}
_PREFIXES = {**_DECIMAL, **_BINARY}

# tc's bit units (it reads "kibit" as 1024 bit/s too); "/s" is optional after "bit"; no unit is bit/s.
_BIT_UNITS = {"": 1.0} | {f"{p}bit{s}": scale for p, scale in _PREFIXES.items() for s in ("", "/s")}

# Units per second, divided by rather than multiplied by 1e-6: 5 / 1e6 rounds to 5e-6, 5 * 1e-6 does not.
_LATENCY_PER_S = {
    "": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0,
    "ms": 1e3, "msec": 1e3, "msecs": 1e3,
    "us": 1e6, "usec": 1e6, "usecs": 1e6, "\u00b5s": 1e6, "\u03bcs": 1e6,  # micro sign, Greek mu
    "ns": 1e9, "nsec": 1e9, "nsecs": 1e9,
}

_BANDWIDTH_HINT = "write e.g. 100mbit, 10gbit or 1.25GB/s"
_LATENCY_HINT = "write e.g. 5us, 0.5ms or 2s"


def show(text: object) -> str:
    """repr() escapes newlines, so the message stays one line; long input is cut."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _split(text: object, field: str, hint: str) -> tuple[float, str]:
    """(number, unit) of a spec; a real number passes through with an empty unit."""
    if isinstance(text, numbers.Real) and not isinstance(text, bool):
        try:
            value, unit = float(text), ""
        except OverflowError:  # an int past float's range (10**400): refused below as not finite
            value, unit = math.inf, ""
    elif isinstance(text, str) and (m := _NUMBER_UNIT.fullmatch(text.strip())):
        value, unit = float(m.group(1)), m.group(2)
    else:
        raise NetworkSpecError(f"{field}: cannot read {show(text)}; {hint}")
    if not math.isfinite(value):
        raise NetworkSpecError(f"{field}: {show(text)} is not a finite number; {hint}")
    return value, unit


def _ambiguous_prefix(unit: str) -> str | None:
    """The prefix of 'gbps' & co, else None: tc reads "bps" as BYTES/s, most people as bits."""
    low = unit.lower()
    if low.endswith("bps") and low[:-3] in _PREFIXES:
        return low[:-3]
    # Bytes need a capital B, so lower-case "mb/s" is as ambiguous as "mbps".
    if unit.endswith("b/s") and low[:-3] in _PREFIXES:
        return low[:-3]
    return None


def _ambiguous(number: float, prefix: str, text: object) -> NetworkSpecError:
    """The error for 'gbps' & co, with both readings of the user's own number spelled out."""
    byte_prefix = prefix[:1].upper() + prefix[1:] if prefix not in ("", "k") else prefix
    return NetworkSpecError(
        f"network.bandwidth: {show(text)} is ambiguous (tc reads bps as bytes/s, most people as "
        f"bits/s); write {number:g}{prefix}bit (bits/s) or {number / 8:g}{byte_prefix}B/s (bytes/s)")


def _bandwidth_scale(unit: str) -> float | None:
    """Bits per second per unit, or None if the unit is unknown."""
    if unit.lower() in _BIT_UNITS:
        return _BIT_UNITS[unit.lower()]
    if unit.endswith("B/s") and unit[:-3].lower() in _PREFIXES:
        return 8 * _PREFIXES[unit[:-3].lower()]
    return None


def parse_bandwidth(text: str | int | float) -> float:
    """Link bandwidth -> bits per second.

    Bit units as tc writes them, case-insensitive: '64bit', '500kbit', '100mbit', '10Gbit', '1tbit'
    (k, m, g, t decimal; ki, mi, gi, ti binary). Byte rates need '/s' and a capital B:
    '125MB/s', '1.25GB/s', '10kB/s' (decimal, x8), 'KiB/s', 'MiB/s', 'GiB/s' (binary).
    A bare number is bits/s. 'gbps', 'mbps', 'kbps', 'bps' and 'Mb/s' are refused as ambiguous.
    """
    field = "network.bandwidth"
    number, unit = _split(text, field, _BANDWIDTH_HINT)
    if number <= 0:
        raise NetworkSpecError(f"{field}: must be > 0, got {show(text)}")
    if (prefix := _ambiguous_prefix(unit)) is not None:
        raise _ambiguous(number, prefix, text)
    scale = _bandwidth_scale(unit)
    if scale is None:
        raise NetworkSpecError(f"{field}: cannot read {show(text)}; {_BANDWIDTH_HINT}")
    bits_per_s = number * scale
    if not math.isfinite(bits_per_s):
        raise NetworkSpecError(f"{field}: {show(text)} overflows a float; {_BANDWIDTH_HINT}")
    return bits_per_s


def parse_latency(text: str | int | float) -> float:
    """One-way link latency -> seconds: '5us' (or 'µs'), '0.5ms', '100ns', '2s', '1.5 ms'.

    A bare number is seconds. 0 is allowed: an ideal link with no per-message cost.
    """
    field = "network.latency"
    number, unit = _split(text, field, _LATENCY_HINT)
    if number < 0:
        raise NetworkSpecError(f"{field}: must be >= 0, got {show(text)}")
    per_s = _LATENCY_PER_S.get(unit.lower())
    if per_s is None:
        raise NetworkSpecError(f"{field}: cannot read {show(text)}; {_LATENCY_HINT}")
    return number / per_s + 0.0  # + 0.0 turns '-0' into 0.0




KIB = 1024
UNITS = {"": 1, "b": 1, "kib": KIB, "mib": KIB**2, "gib": KIB**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_bytes(text: str | int) -> int:
    """'1KiB' -> 1024, '256MiB' -> 268435456, '4096' -> 4096."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in UNITS:
        raise ValueError(f"cannot read {text!r} as a size; write e.g. 1KiB, 64MiB or 4096")
    value = int(float(match.group(1)) * UNITS[match.group(2).lower()])
    if value < 4:
        raise ValueError(f"size {text!r} is below one fp32 element (4 bytes)")
    return value
