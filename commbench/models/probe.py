"""What input a model takes and what it outputs, found by running it: the smallest square image a
zoo model accepts (recorded in the registry, measured here for other variants), and for a library's
or a user's model, whether the run's image size goes through and how many classes it scores."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from commbench.models.registry import build_model, get_spec, variant_kwargs

if TYPE_CHECKING:
    import torch
    from torch import nn

BATCH = 2  # BatchNorm in training needs two values per channel


def logits(out: Any) -> torch.Tensor:
    """The class scores of a forward: Inception3 in training returns (logits, aux_logits)."""
    return out[0] if isinstance(out, tuple) else out


def forward_ok(model: nn.Module, size: int, batch: int = 1) -> bool:
    """Does a (batch, 3, size, size) input go through (in the model's current mode) and give one
    logit row per sample?"""
    import torch

    try:
        with torch.no_grad():
            out = logits(model(torch.zeros(batch, 3, size, size)))
    except (RuntimeError, ValueError):  # too small: a kernel/pool larger than its input
        return False
    return out.dim() == 2 and out.shape[0] == batch


def accepts(model: nn.Module, size: int) -> bool:
    """Does a size go through in eval (batch 1: BatchNorm uses running statistics) and in training
    (batch 2: BatchNorm needs two values per channel), as a run needs?  Only training runs
    inception_v3's auxiliary classifier.  Leaves the model in eval mode."""
    try:
        return forward_ok(model.eval(), size) and forward_ok(model.train(), size, batch=BATCH)
    finally:
        model.eval()


def measure_min_image_size(model: nn.Module, limit: int = 1024) -> int:
    """Smallest square size that `accepts`, by binary search (sizes that fit only grow)."""
    hi = 8
    while not accepts(model, hi):
        if hi >= limit:
            raise ValueError(f"no input size up to {limit} px goes through the model")
        hi *= 2
    lo = 0  # size 0 never works
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if accepts(model, mid) else (mid, hi)
    return hi


@functools.lru_cache(maxsize=None)
def _measured(name: str, variant: tuple[tuple[str, Any], ...]) -> int:
    return measure_min_image_size(build_model(name, num_classes=2, **dict(variant)))


def min_image_size(name: str, **kwargs: Any) -> int:
    """Smallest square input a zoo variant accepts (recorded for defaults, else measured once)."""
    spec = get_spec(name)
    variant = variant_kwargs(spec, kwargs)
    if variant == dict(spec.defaults):
        return spec.min_image_size
    return _measured(name, tuple(sorted(variant.items())))


def output_classes(name: str, image_size: int, **kwargs: Any) -> int:
    """The classes a model scores, from a training forward of a (2, 3, S, S) batch: on the meta device
    (shapes only), else on the CPU for a model whose forward needs real values. ValueError, one line,
    when the input does not go through or the output is not one row of scores per image."""
    import torch

    def scores(device: str):
        with torch.device(device):
            model = build_model(name, **kwargs).train()
            with torch.no_grad():
                return logits(model(torch.zeros(BATCH, 3, image_size, image_size)))

    try:
        out = scores("meta")
    except Exception:  # noqa: BLE001 - too small, or a model the meta device cannot run: try real values
        try:
            out = scores("cpu")
        except Exception as exc:  # noqa: BLE001 - whatever the model raised, said in one line
            cause = exc.__cause__ or exc  # Hydra wraps a factory's own error
            reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            raise ValueError(f"{name} does not build and run at image_size={image_size}: {reason}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != BATCH:
        raise ValueError(f"{name} gives {getattr(out, 'shape', type(out).__name__)} for a batch of {BATCH} images; "
                         "a classifier gives (batch, classes)")
    return int(out.shape[1])
