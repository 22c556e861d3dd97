"""none: DDP's fp32 all-reduce of each bucket, every byte counted at the collective."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from commbench.comm.schemes import Scheme


def hook(counter: Any, params: Mapping[str, Any]) -> tuple[Any, Callable]:
    from commbench.comm.hooks import counting_allreduce_hook

    return counter, counting_allreduce_hook


SCHEME = Scheme(name="none", order=0, summary="fp32 all-reduce", hook=hook,
                bucket_bytes=lambda n, params: 4 * n, replayable=True)
