"""bf16: torch's bf16_compress_wrapper around the counting all-reduce (half the bytes, fp32's range);
gloo reduces bf16 on CPU, nccl on GPUs."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from commbench.comm.schemes import Scheme


def hook(counter: Any, params: Mapping[str, Any]) -> tuple[Any, Callable]:
    from commbench.comm.compression import cast_allreduce

    return cast_allreduce(counter, "bf16")


SCHEME = Scheme(name="bf16", order=2, summary="bf16 all-reduce", hook=hook,
                bucket_bytes=lambda n, params: 2 * n, replayable=True)
