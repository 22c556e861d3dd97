"""DDP's gradient bucket layout for a model without running it: DDP's own assignment function over
the parameters in gradient-ready order (reverse of definition), as DDP rebuilds its buckets after
the first step. A run's record has the layout as the hook saw it; this is for models not yet run."""

from __future__ import annotations

from typing import Any


def ddp_bucket_bytes(model: str, model_kwargs: dict[str, Any] | None = None, bucket_cap_mb: float = 25) -> list[int]:
    import torch
    import torch.distributed as dist

    from commbench.models import build_model

    with torch.device("meta"):  # shapes and dtypes are all the layout needs: no memory, no init
        params = [p for p in build_model(model, **(model_kwargs or {})).parameters() if p.requires_grad]
    ready_order = list(reversed(params))
    cap = int(bucket_cap_mb * 1024 * 1024)
    indices, _ = dist._compute_bucket_assignment_by_size(ready_order, [cap], [False] * len(ready_order))
    return [sum(ready_order[i].numel() * ready_order[i].element_size() for i in bucket) for bucket in indices]
