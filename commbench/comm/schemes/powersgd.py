"""powersgd: torch's powerSGD_hook (rank r, error feedback, warm start). It issues its own all-reduces,
two of them from future callbacks, so they are counted where torch.distributed is called
(compression.CountingDist, in a private copy of torch's module). One bucket: on gloo, several buckets'
callback-issued all-reduces can interleave differently on different ranks and abort with a size mismatch.
Its bytes depend on the gradients' shapes (factors per matrix), not on a bucket's size: no formula."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from commbench.comm.schemes import Param, Scheme, is_integer, is_number


def hook(counter: Any, params: Mapping[str, Any]) -> tuple[Any, Callable]:
    from commbench.comm.compression import private_powersgd_module

    module = private_powersgd_module(counter)
    state = module.PowerSGDState(
        process_group=counter.group, matrix_approximation_rank=params["rank"],
        start_powerSGD_iter=params["start_iter"], min_compression_rate=params["min_compression_rate"],
        use_error_feedback=True, warm_start=True, random_seed=0)
    return state, module.powerSGD_hook


def warmup_check(warmup: int, params: Mapping[str, Any]) -> Optional[str]:
    if warmup < params["start_iter"]:
        return (f"compression=powersgd starts compressing at step {params['start_iter']}: warmup={warmup} "
                "would time uncompressed steps; set warmup >= compression.start_iter")
    return None


SCHEME = Scheme(
    name="powersgd", order=3, summary="rank-r factors, one bucket", hook=hook, bucket_bytes=None,
    params={
        "rank": Param(lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
        # >= 2: torch needs it for error feedback and warm start; steps before it are plain all-reduce.
        "start_iter": Param(lambda v: is_integer(v) and v >= 2, "an integer >= 2"),
        "min_compression_rate": Param(lambda v: is_number(v) and v > 0, "a number > 0"),
    },
    label_param="rank", single_bucket=True, late_collectives=True, warmup_check=warmup_check)
