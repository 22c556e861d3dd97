"""Model zoo of commbench: AlexNet vs SqueezeNet and other compact CNNs.

``from commbench.models import MODELS, build_model, count_params`` is all most code needs.
"""

from .registry import (
    MODELS,
    ModelSpec,
    UnknownModelError,
    build_model,
    count_params,
    count_params_meta,
    get_spec,
    min_image_size,
)

__all__ = [
    "MODELS",
    "ModelSpec",
    "UnknownModelError",
    "build_model",
    "count_params",
    "count_params_meta",
    "get_spec",
    "min_image_size",
]
