"""int8: each bucket quantized with its own scale (max|g| / 127); int8 values and the fp32 scale
all-gathered, dequantized and averaged on every rank (an int8 sum would overflow)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from commbench.comm.schemes import Scheme


def hook(counter: Any, params: Mapping[str, Any]) -> tuple[Any, Callable]:
    import torch

    from commbench.comm.compression import gather_and_average

    tiny = torch.finfo(torch.float32).tiny

    def int8_hook(counter, bucket):
        """Send the bucket as int8 with one fp32 scale."""
        grad = bucket.buffer()
        scale = (grad.abs().max() / 127).clamp(min=tiny).reshape(1)
        quantized = torch.round(grad / scale).to(torch.int8)
        return gather_and_average(counter, grad, [quantized, scale], lambda g, q, s: g.add_(q.to(g.dtype) * s))

    return counter, int8_hook


SCHEME = Scheme(name="int8", order=5, summary="int8 + a scale, all-gathered", hook=hook,
                bucket_bytes=lambda n, params: n + 4,  # int8 values + one fp32 scale
                collective="all_gather")
