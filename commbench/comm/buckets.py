"""DDP's gradient bucket layout for a model without running it: DDP's own assignment function over
the parameters in gradient-ready order (reverse of definition), as DDP rebuilds its buckets after
the first step. A run's record has the layout as the hook saw it; this is for models not yet run."""

from __future__ import annotations

import json
from typing import Any


PROFILE_IMAGE = 224  # the input the backward profile is counted at (ImageNet's), or the model's least


def _build_meta(model: str, model_kwargs: dict[str, Any]):
    """The model on the meta device (shapes and dtypes, no memory, no init): a zoo model, else a
    torchvision classification model by its registry name."""
    import torch

    from commbench.models import MODELS, build_model

    with torch.device("meta"):
        if model in MODELS:
            return build_model(model, **model_kwargs)
        from torchvision.models import get_model
        return get_model(model, **model_kwargs)


def backward_done(built, params: list, image: int = PROFILE_IMAGE) -> list[float]:
    """Per parameter, the share of backward's work done when its gradient is ready: backward visits the
    modules in reverse order of their forward execution, each costing in proportion to its forward
    FLOPs (torch's FlopCounterMode, counted on the meta device at `image` px, batch 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    order: list[str] = []
    owners = {name: mod for name, mod in built.named_modules() if not list(mod.children())
              or any(True for _ in mod.parameters(recurse=False))}
    hooks = [mod.register_forward_hook(lambda *_, name=name: order.append(name)) for name, mod in owners.items()]
    try:
        with FlopCounterMode(display=False) as counter:
            built.train()(torch.zeros(2, 3, image, image, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    counts, root = counter.get_flop_counts(), type(built).__name__
    first = list(dict.fromkeys(order))  # a module run twice is ready after its first run's backward
    flops = [sum(counts.get(f"{root}.{name}", {}).values()) for name in first]
    total = sum(flops) or 1
    done_after, behind = {}, 0
    for name, f in reversed(list(zip(first, flops))):
        behind += f
        done_after[name] = behind / total
    owner_of = {id(p): name for name, mod in owners.items() for p in mod.parameters(recurse=False)}
    return [done_after.get(owner_of.get(id(p)), 1.0) for p in params]


def ddp_bucket_bytes(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = 25) -> list[int]:
    return ddp_layout(model, model_kwargs, bucket_cap_mb)["buckets"]


def ddp_layout(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = 25) -> dict[str, Any]:
    """{"buckets": payload bytes per bucket in issue order, "tensors": gradient tensors per step,
    "done": per bucket, the share of backward's work done when its last gradient is ready}."""
    import torch.distributed as dist

    from commbench.models import MODELS, min_image_size

    built = _build_meta(model, model_kwargs or {})
    ready_order = list(reversed([p for p in built.parameters() if p.requires_grad]))
    cap = int(bucket_cap_mb * 1024 * 1024)
    indices, _ = dist._compute_bucket_assignment_by_size(ready_order, [cap], [False] * len(ready_order))
    done = backward_done(built, ready_order, max(PROFILE_IMAGE, min_image_size(model) if model in MODELS else 0))
    return {"buckets": [sum(ready_order[i].numel() * ready_order[i].element_size() for i in bucket) for bucket in indices],
            "tensors": len(ready_order), "done": [max(done[i] for i in bucket) for bucket in indices]}


def cached_layout(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = 25) -> dict[str, Any]:
    """ddp_layout, computed once per model, variant and cap and kept in the user's cache (commbench.cache)."""
    from commbench.cache import cached

    name = "layout-" + json.dumps([model, model_kwargs or {}, bucket_cap_mb], sort_keys=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return cached(safe, lambda: ddp_layout(model, model_kwargs, bucket_cap_mb))
