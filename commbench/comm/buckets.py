"""DDP's gradient bucket layout for a model without running it: DDP's own assignment function over
the parameters in gradient-ready order (reverse of definition), as DDP rebuilds its buckets after
the first step. A run's record has the layout as the hook saw it; this is for models not yet run."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from commbench.errors import first_line
from commbench.settings import default


DDP_CAP_MB = default("ddp.bucket_cap_mb")
PROFILE_IMAGE = 224  # the input the backward profile is counted at (ImageNet's), or the model's least


def _build_meta(model: str, model_kwargs: dict[str, Any]):
    """The model on the meta device (shapes and dtypes, no memory, no init). A bare name the zoo lacks
    is torchvision's (a published row's resnext101_32x8d)."""
    import torch

    from commbench.models import MODELS, ModelSourceError, build_model
    from commbench.models.sources import split

    if model not in MODELS and not split(model)[0]:
        model = f"torchvision/{model}"
    try:
        with torch.device("meta"):
            return build_model(model, **model_kwargs)
    except ModelSourceError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:  # a factory's own error, or arguments it lacks
        raise ModelSourceError(f"{model} does not build: {first_line(exc)}") from None


BATCH = 2  # the meta forward's batch (BatchNorm in training needs two values per channel)


def backward_done(built, params: list, image: int = PROFILE_IMAGE) -> tuple[list[float], float]:
    """Per parameter, the share of backward's work done when its gradient is ready, and the forward
    FLOPs of one image: backward visits the modules in reverse order of their forward execution, each
    costing in proportion to its own forward FLOPs (torch's FlopCounterMode, counted on the meta
    device at `image` px; a module's own: its count less its children's, which the counter adds to
    their parents too)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    order: list[str] = []
    modules = dict(built.named_modules())
    hooks = [mod.register_forward_hook(lambda *_, name=name: order.append(name)) for name, mod in modules.items()]
    try:
        with FlopCounterMode(display=False) as counter:
            built.train()(torch.zeros(BATCH, 3, image, image, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    counts, root = counter.get_flop_counts(), type(built).__name__

    def total(name: str) -> int:
        return sum(counts.get(f"{root}.{name}" if name else root, {}).values())

    own = {name: total(name) - sum(total(f"{name}.{child}" if name else child) for child, _ in mod.named_children())
           for name, mod in modules.items()}
    # A forward hook fires when its module ends (a parent after its children); backward reaches the
    # modules in the reverse order, and a module run twice once backward is through its first run.
    done_after, behind, whole = {}, 0, sum(own.values()) or 1
    for name in reversed(list(dict.fromkeys(order))):
        behind += own[name]
        done_after[name] = behind / whole
    owner_of = {id(p): name for name, mod in modules.items() for p in mod.parameters(recurse=False)}
    return [done_after.get(owner_of.get(id(p)), 1.0) for p in params], total("") / BATCH


def ddp_layout(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = DDP_CAP_MB) -> dict[str, Any]:
    """{"buckets": payload bytes per bucket in issue order, "tensors": gradient tensors per step,
    "done": per bucket, the share of backward's work done when its last gradient is ready, "flops":
    forward FLOPs per image at the profile's size; both None where the model's forward does not run
    on the meta device (the profile then goes by bytes)}."""
    import torch.distributed as dist

    from commbench.models import MODELS, min_image_size

    kwargs = model_kwargs or {}
    built = _build_meta(model, kwargs)
    ready_order = list(reversed([p for p in built.parameters() if p.requires_grad]))
    cap = int(bucket_cap_mb * 1024 * 1024)
    indices, _ = dist._compute_bucket_assignment_by_size(ready_order, [cap], [False] * len(ready_order))
    variant = {k: v for k, v in kwargs.items() if k != "num_classes"}
    try:
        done, flops = backward_done(built, ready_order, max(PROFILE_IMAGE, min_image_size(model, **variant) if model in MODELS else 0))
    except (RuntimeError, NotImplementedError, ValueError):  # an op without a meta kernel, an input too small
        done, flops = None, None
    return {"buckets": [sum(ready_order[i].numel() * ready_order[i].element_size() for i in bucket) for bucket in indices],
            "tensors": len(ready_order), "done": done and [max(done[i] for i in bucket) for bucket in indices],
            "flops": flops}


def cached_layout(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = DDP_CAP_MB) -> dict[str, Any]:
    """ddp_layout, computed once per model, variant and cap and kept in the user's cache (commbench.cache);
    a user's factory under its source's digest too, as the cache's own key does not cover its code."""
    from commbench.cache import cached
    from commbench.models.sources import factory_digest

    key = json.dumps([model, model_kwargs or {}, bucket_cap_mb, factory_digest(model)], sort_keys=True)
    return cached(f"layout-{hashlib.sha256(key.encode()).hexdigest()[:16]}", lambda: ddp_layout(model, model_kwargs, bucket_cap_mb))
