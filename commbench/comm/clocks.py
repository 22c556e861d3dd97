"""The clock a step is timed with. On CPU, host time: work is done when the call returns. On a GPU,
host time is launch time (kernels and NCCL collectives are queued), so stamps are CUDA events recorded
on the stream that did the work, and one synchronize(device) at the end of the step turns them into
seconds. The hooks and the worker stamp through the same interface on both."""

from __future__ import annotations

import time
from typing import Any


class HostClock:
    """perf_counter stamps; seconds() is relative to the step's first stamp."""

    def stamp(self) -> float:
        return time.perf_counter()

    def seconds(self, origin: float, stamps: list[Any]) -> list[float]:
        return [s - origin for s in stamps]


class CudaClock:
    """CUDA event stamps on the current stream of the calling thread: in a DDP hook that is the stream
    backward produced the bucket on; in a collective's `.then` callback, the stream the NCCL work was
    synchronized to, so the event completes with the collective."""

    def __init__(self, device) -> None:
        import torch

        self.device = device
        self._torch = torch

    def stamp(self):
        event = self._torch.cuda.Event(enable_timing=True)
        event.record(self._torch.cuda.current_stream(self.device))
        return event

    def seconds(self, origin, stamps: list[Any]) -> list[float]:
        self._torch.cuda.synchronize(self.device)  # once per step, on this worker's device
        return [origin.elapsed_time(s) / 1e3 for s in stamps]


def clock_for(device) -> HostClock | CudaClock:
    return CudaClock(device) if getattr(device, "type", "cpu") == "cuda" else HostClock()
