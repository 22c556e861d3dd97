"""Model zoo of commbench: AlexNet vs SqueezeNet and other compact CNNs, and any torchvision or timm
model or a user's factory (models/sources.py).

``from commbench.models import MODELS, build_model, count_params`` is all most code needs.
"""

from .probe import min_image_size, output_classes
from .registry import (
    MODELS,
    ModelSpec,
    UnknownModelError,
    build_model,
    count_params,
    count_params_meta,
    get_spec,
)
from .sources import ModelSourceError

MODEL_ERRORS = (UnknownModelError, ModelSourceError)  # a name the zoo or the library lacks; a factory that does not import

__all__ = [
    "MODELS",
    "MODEL_ERRORS",
    "ModelSourceError",
    "ModelSpec",
    "UnknownModelError",
    "build_model",
    "count_params",
    "count_params_meta",
    "get_spec",
    "min_image_size",
    "output_classes",
]
