"""One step as a picture (a Gantt chart, a lane per rank, measured beside predicted) and as a Chrome
trace-event file (the JSON Perfetto and chrome://tracing open), from results/steps.py's spans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from commbench.results.steps import Span
from commbench.sinks.charts import plt, save

COLORS = {"forward": "tab:blue", "backward": "tab:cyan", "codec": "tab:purple", "collective": "tab:orange",
          "exposed comm": "tab:red", "optimizer": "tab:green", "buffer broadcast": "tab:brown"}


def kind(name: str) -> str:
    """'collective 3' -> 'collective', 'codec 0' -> 'codec'; a span's colour and legend entry."""
    return next((k for k in COLORS if name.startswith(k)), name)


def lanes(spans: list[Span]) -> list[str]:
    """Lanes top to bottom, in the order they first appear (a rank's compute lane, then its comm lane)."""
    return list(dict.fromkeys(lane for lane, *_ in spans))


def plot_step(spans: list[Span], title: str, path: Path) -> Path:
    order = lanes(spans)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * len(order)))
    seen: set[str] = set()
    for lane, name, start, end in spans:
        y = len(order) - 1 - order.index(lane)
        if end == start:  # a bucket became ready
            ax.plot([1e3 * start] * 2, [y - 0.4, y + 0.4], color="black", linewidth=1)
            continue
        k = kind(name)
        ax.barh(y, 1e3 * (end - start), left=1e3 * start, height=0.6, color=COLORS.get(k, "0.6"), edgecolor="white",
                linewidth=0.5, label=None if k in seen else k)
        seen.add(k)
    ax.plot([], [], color="black", linewidth=1, label="bucket ready")
    ax.set_yticks(range(len(order)), list(reversed(order)), fontsize=8)
    ax.set_xlabel("time from the step's start (ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(order) < 4 else -0.12),
              frameon=False)
    return save(fig, path)


def chrome_trace(spans: list[Span], meta: dict[str, Any], path: Path) -> Path:
    """Trace-event JSON: a complete event ('X', microseconds) per span, an instant ('i') per bucket
    ready, one thread per lane, named; `meta` lands in otherData."""
    order = lanes(spans)
    events: list[dict[str, Any]] = [{"name": "thread_name", "ph": "M", "pid": 1, "tid": t, "args": {"name": lane}}
                                    for t, lane in enumerate(order)]
    for lane, name, start, end in spans:
        event = {"name": name, "cat": kind(name), "pid": 1, "tid": order.index(lane), "ts": 1e6 * start}
        events.append({**event, "ph": "i", "s": "t"} if end == start else {**event, "ph": "X", "dur": 1e6 * (end - start)})
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms", "otherData": meta}, indent=1))
    return path
