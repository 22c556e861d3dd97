"""What input a model takes and what it outputs, found by running it: the smallest square image a
zoo model accepts (recorded in the registry, measured here for other variants), and for a library's
or a user's model, whether the run's image size goes through and how many classes it scores."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from commbench.errors import first_line
from commbench.models.registry import build_model, get_spec, variant_kwargs
from commbench.models.sources import ModelSourceError

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


def heads(out: Any, batch: int) -> list[torch.Tensor]:
    """A training forward's class scores: the logits, then any auxiliary head's of the same shape
    (Inception v3 and GoogLeNet return theirs beside the logits). ValueError unless the logits are
    one row per image."""
    import torch

    main, *rest = out if isinstance(out, tuple) else (out,)
    if not isinstance(main, torch.Tensor) or main.dim() != 2 or main.shape[0] != batch:
        raise ModelRefused(f"gives {getattr(main, 'shape', type(main).__name__)} for a batch of {batch} images; "
                           "a classifier gives (batch, classes)")
    return [main, *(t for t in rest if isinstance(t, torch.Tensor) and t.shape == main.shape)]


class ModelRefused(ValueError):
    """What a probe found wrong with a model that built and ran."""


def output_classes(name: str, image_size: int, **kwargs: Any) -> int:
    """The classes a model scores, from a training step of a (2, 3, S, S) batch: on the meta device
    (shapes only), else, for a forward that needs real values, on the CPU. ValueError, one line, when
    it does not build or run at that size, its output is not one row of scores per image, or a
    parameter gets no gradient (DDP would fail on it once Ray has started)."""
    return _classes(name, image_size, json.dumps(kwargs, sort_keys=True, default=str))


@functools.lru_cache(maxsize=64)
def _classes(name: str, image_size: int, kwargs_json: str) -> int:
    kwargs = json.loads(kwargs_json)
    try:
        try:
            return _train_step(name, image_size, kwargs, "meta")
        except Exception as exc:  # noqa: BLE001 - only a forward that needs real values runs again on the CPU
            if isinstance(exc, ModelRefused) or not (isinstance(exc, NotImplementedError) or "meta" in str(exc).lower()):
                raise
        return _train_step(name, image_size, kwargs, "cpu")
    except ModelRefused as exc:
        raise ValueError(f"{name} {exc}") from None
    except ModelSourceError as exc:  # a factory that does not build says so itself
        raise ValueError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - said in one line
        raise ValueError(f"{name} does not build and run at image_size={image_size}: {first_line(exc)}") from None


def _train_step(name: str, image_size: int, kwargs: dict[str, Any], device: str) -> int:
    import torch

    with torch.device(device):
        model = build_model(name, **kwargs).train()
        scores = heads(model(torch.zeros(BATCH, 3, image_size, image_size)), BATCH)
    sum(t.sum() for t in scores).backward()
    idle = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if idle:
        raise ModelRefused(f"has {len(idle)} parameter(s) that get no gradient in training ({idle[0]}, ...): "
                           "DDP fails on them")
    return int(scores[0].shape[1])
