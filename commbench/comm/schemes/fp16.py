"""fp16: torch's fp16_compress_wrapper around the counting all-reduce; the counter sees the half-width
tensor it really reduces."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from commbench.comm.schemes import Scheme


def hook(counter: Any, params: Mapping[str, Any]) -> tuple[Any, Callable]:
    from commbench.comm.compression import cast_allreduce

    return cast_allreduce(counter, "fp16")


SCHEME = Scheme(name="fp16", order=1, summary="fp16 all-reduce", hook=hook,
                bucket_bytes=lambda n, params: 2 * n, replayable=True)
