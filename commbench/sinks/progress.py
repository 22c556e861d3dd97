"""What the driver is waiting on, as it happens: in a terminal one live status line (rich), redrawn in
place; piped to a file one line per phase, never a redraw, so a log keeps the phases and the results."""

from __future__ import annotations

import time
from typing import Any

from commbench.sinks.console import console


class Phases:
    """The phases of one run: starting Ray, starting the workers (k/N joined), building the model,
    warmup, the timed steps (k/n, with the last step's time), gathering, writing."""

    def __init__(self, label: str, nodes: int, live: bool | None = None) -> None:
        self.label, self.nodes = label, nodes
        self.live = console.is_terminal if live is None else live
        self.status = None
        self.shown: str | None = None  # the last phase printed (pipe)
        self.printed = 0  # how many of the board's phases are behind the last one (pipe)
        self.t0 = time.monotonic()

    @classmethod
    def silent(cls) -> "Phases":
        phases = cls("", 0, live=False)
        phases.phase = phases.note = lambda text, detail="": None  # type: ignore[method-assign]
        return phases

    def __enter__(self) -> "Phases":
        if self.live:
            self.status = console.status(self.label, spinner="dots")
            self.status.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.status is not None:
            self.status.stop()

    def phase(self, text: str, detail: str = "") -> None:
        """A phase began (`detail` changes within it: redrawn in a terminal, not printed to a pipe)."""
        if self.status is not None:
            elapsed = time.monotonic() - self.t0
            self.status.update(f"{self.label}: {text}{' ' + detail if detail else ''} [dim]({elapsed:.0f} s)[/dim]")
        elif text != self.shown:
            console.print(f"  {self.label}: {text}", highlight=False)
        self.shown = text

    def note(self, text: str) -> None:
        """A line that stays (above a live status line)."""
        console.print(f"  {text}", highlight=False, style="dim")

    def board(self, status: dict[str, Any], phases: list[str], joined: int) -> None:
        """A worker group's board (pool.Board): rank 0's phases so far (a pipe gets each one, however
        short, in order), or, before the first, how many workers have joined."""
        if not phases:
            if joined < self.nodes:  # else a group that is up: rank 0 has the cell in a moment
                self.phase(f"starting {self.nodes} worker process{'es' if self.nodes > 1 else ''}",
                           f"({joined}/{self.nodes} joined; each imports torch)")
            return
        if self.status is None:  # a pipe: the phases passed since the last poll, each once
            for phase in phases[self.printed:-1]:
                self.phase(phase)
            self.printed = len(phases) - 1
        detail = ""
        if status.get("phase") == phases[-1] and "done" in status:
            detail = f"{status['done']}/{status['total']}"
            if "step_s" in status:
                detail += f", last step {status['step_s'] * 1e3:.1f} ms"
        self.phase(phases[-1], detail)
