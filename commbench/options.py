"""A subcommand's own key=value options, declared once: the same declaration parses them, fills in
their defaults and writes its --help, so help cannot drift from behaviour."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from commbench.errors import did_you_mean, fail
from commbench.settings import default

HELP_FLAGS = ("--help", "-h")


@dataclass(frozen=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str


@dataclass(frozen=True)
class Command:
    name: str
    summary: str  # one line: what the command answers
    options: tuple[Option, ...] = ()
    run_options: bool = False  # the rest of argv are run overrides (nodes=4, cluster=emulated, ...)
    examples: tuple[str, ...] = field(default_factory=tuple)

    def parse(self, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
        """(our options, the run overrides); --help prints help and exits 0."""
        if any(a in HELP_FLAGS for a in argv):
            print(self.help())
            sys.exit(0)
        spec = {o.name: o for o in self.options}
        values = {o.name: o.default for o in self.options}
        rest = []
        for arg in argv:
            key, sep, text = arg.partition("=")
            if sep and key in spec:
                try:
                    values[key] = spec[key].parse(text)
                except ValueError as exc:  # parsers that name the key themselves are not repeated
                    fail(str(exc) if str(exc).startswith(key) else f"{key} {exc}")
            elif self.run_options:
                rest.append(arg)
            else:
                fail(self.unknown(arg))
        return values, rest

    def unknown(self, arg: str) -> str:
        key = arg.partition("=")[0]
        known = " ".join(f"{o.name}=" for o in self.options) or "none"
        return f"unknown option {key!r} for {self.name}{did_you_mean(key, [o.name for o in self.options])}; its options: {known}"

    def help(self) -> str:
        lines = [f"usage: python -m commbench {self.name} [option=value ...]"
                 + (" [run options ...]" if self.run_options else ""), "", self.summary, ""]
        if self.options:
            lines.append("options:")
            width = max(len(o.name) for o in self.options) + 2
            for o in self.options:
                lines.append(f"  {o.name:<{width}}{o.help} (default: {show_default(o.default)})")
        if self.run_options:
            lines += ["", "run options: any key of a run (nodes=4, cluster=emulated, network.bandwidth=100mbit, "
                      "results_dir=...); see python -m commbench --help"]
        if self.examples:
            lines += ["", "examples:", *(f"  python -m commbench {e}" for e in self.examples)]
        return "\n".join(lines)


def show_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "[]"
    return str(value)


# ---------------------------------------------------------------- value parsers
def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return text
    return parse


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def _finite(text: str, zero_ok: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 <= value if zero_ok else 0 < value) or value == float("inf"):
        raise ValueError(f"must be a number {'>=' if zero_ok else '>'} 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    return _finite(text, zero_ok=False)


def non_negative_float(text: str) -> float:
    return _finite(text, zero_ok=True)


def boolean(text: str) -> bool:
    return choice("true", "false")(text) == "true"


FORMAT = Option("format", choice("table", "json"), "table", "table for people, json for machines")
RESULTS = Option("results_dir", str, default("results_dir"), "the results folder to read")
