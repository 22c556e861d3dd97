"""DDP's gradient bucket layout for a model without running it: DDP's own assignment function over
the parameters in gradient-ready order (reverse of definition), as DDP rebuilds its buckets after
the first step. A run's record has the layout as the hook saw it; this is for models not yet run."""

from __future__ import annotations

import json
from typing import Any


def _trainable(model: str, model_kwargs: dict[str, Any]):
    """The model's trainable parameters on the meta device (shapes and dtypes, no memory, no init): a
    zoo model, else a torchvision classification model by its registry name."""
    import torch

    from commbench.models import MODELS, build_model

    with torch.device("meta"):
        if model in MODELS:
            built = build_model(model, **model_kwargs)
        else:
            from torchvision.models import get_model
            built = get_model(model, **model_kwargs)
    return [p for p in built.parameters() if p.requires_grad]


def ddp_bucket_bytes(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = 25) -> list[int]:
    return ddp_layout(model, model_kwargs, bucket_cap_mb)["buckets"]


def ddp_layout(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = 25) -> dict[str, Any]:
    """{"buckets": payload bytes per bucket in issue order, "tensors": gradient tensors per step}."""
    import torch.distributed as dist

    ready_order = list(reversed(_trainable(model, model_kwargs or {})))
    cap = int(bucket_cap_mb * 1024 * 1024)
    indices, _ = dist._compute_bucket_assignment_by_size(ready_order, [cap], [False] * len(ready_order))
    return {"buckets": [sum(ready_order[i].numel() * ready_order[i].element_size() for i in bucket) for bucket in indices],
            "tensors": len(ready_order)}


def cached_layout(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = 25) -> dict[str, Any]:
    """ddp_layout, computed once per model, variant and cap and kept in the user's cache (commbench.cache)."""
    from commbench.cache import cached

    name = "layout-" + json.dumps([model, model_kwargs or {}, bucket_cap_mb], sort_keys=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return cached(safe, lambda: ddp_layout(model, model_kwargs, bucket_cap_mb))
