"""Registry of the benchmarked CNNs: name -> how to build it, where it comes from, its limits.

Parameter counts are what matters to commbench (gradient bytes per step), so every
model has a fixed architecture: global/adaptive pooling before the classifier makes
the count independent of the input size.  ``min_image_size`` values were measured
(see ``measure_min_image_size``) and are asserted by tests/test_models.py.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from commbench.errors import did_you_mean
from commbench.models import sources
from commbench.models.sources import Timm, Torchvision

if TYPE_CHECKING:
    from torch import nn

TORCHVISION, TIMM = "torchvision", "timm"


class FrozenDict(Mapping):
    """Read-only, hashable, picklable mapping: specs are shared state and may travel to workers."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)


@dataclass(frozen=True)
class ModelSpec:
    name: str                        # registry key, or <source>/<name> for a library's or a user's model
    build: Callable[..., nn.Module]  # build(num_classes=1000, **variant_kwargs)
    source: str                      # "torchvision", "timm", "paper: <short title>, <table/section>", "custom"
    min_image_size: int | None       # smallest H=W the default variant accepts (measured); None: probed per run
    defaults: Mapping[str, Any] = field(default_factory=FrozenDict)  # default variant kwargs
    open: bool = False               # any keyword argument goes to the builder (a library's or a user's model)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", FrozenDict(self.defaults))


class UnknownModelError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:  # KeyError would repr() the message; keep it one plain line
        return (f"unknown model {self.name!r}{did_you_mean(str(self.name), MODELS)}; the zoo: {', '.join(MODELS)}; any other: "
                "model=torchvision|timm model.name=..., or model=custom model._target_=package.module.factory")


@dataclass(frozen=True)
class _Own:
    """Builder for a model of this package (a family torchvision lacks), imported when built: the
    registry itself imports no torch, so a plan is checked without it."""

    module: str
    fn: str

    def __call__(self, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
        return getattr(importlib.import_module(f"commbench.models.{self.module}"), self.fn)(num_classes, **kwargs)


densenet_bc, espnetv2, mobilenet_v1, shufflenet_v1, squeezenext = (
    _Own(name, name) for name in ("densenet_bc", "espnetv2", "mobilenet_v1", "shufflenet_v1", "squeezenext"))
squeezenet_simple_bypass = _Own("squeezenet", "squeezenet_simple_bypass")
squeezenet_complex_bypass = _Own("squeezenet", "squeezenet_complex_bypass")


_SHUFFLENET_V2 = {0.5: "shufflenet_v2_x0_5", 1.0: "shufflenet_v2_x1_0",
                  1.5: "shufflenet_v2_x1_5", 2.0: "shufflenet_v2_x2_0"}


def shufflenet_v2(num_classes: int = 1000, scale: float = 1.0) -> nn.Module:
    if scale not in _SHUFFLENET_V2:
        raise ValueError(f"shufflenet_v2 scale must be one of {sorted(_SHUFFLENET_V2)}, got {scale!r}")
    return Torchvision(_SHUFFLENET_V2[scale])(num_classes=num_classes)


def _spec(name, build, source, min_image_size, **defaults) -> tuple[str, ModelSpec]:
    return name, ModelSpec(name, build, source, min_image_size, defaults)


# Order matters: AlexNet (the baseline), the SqueezeNet family, the other compact CNNs, then the large ones.
MODELS: dict[str, ModelSpec] = dict([
    _spec("alexnet", Torchvision("alexnet"), TORCHVISION, 63),
    _spec("squeezenet", Torchvision("squeezenet1_0"), TORCHVISION, 21),
    _spec("squeezenet1_1", Torchvision("squeezenet1_1"), TORCHVISION, 17),
    _spec("squeezenet_simple_bypass", squeezenet_simple_bypass,
          "paper: SqueezeNet, Sec. 6 / Fig. 2 (simple bypass) / Table 3", 21),
    _spec("squeezenet_complex_bypass", squeezenet_complex_bypass,
          "paper: SqueezeNet, Sec. 6 / Fig. 2 (complex bypass) / Table 3", 21),
    _spec("squeezenext", squeezenext,
          "paper: SqueezeNext, Sec. 3 (SqNxt block), 1.0-SqNxt-23 reference prototxt", 9,
          width=1.0, depth=23),
    _spec("mobilenet_v1", mobilenet_v1, "paper: MobileNets, Table 1 (body) / Table 6 (width)", 1,
          alpha=1.0),
    _spec("mobilenet_v2", Torchvision("mobilenet_v2"), TORCHVISION, 1),
    _spec("mobilenet_v3_small", Torchvision("mobilenet_v3_small"), TORCHVISION, 1),
    _spec("mobilenet_v3_large", Torchvision("mobilenet_v3_large"), TORCHVISION, 1),
    _spec("shufflenet_v1", shufflenet_v1, "paper: ShuffleNet, Table 1 / Sec. 3.3", 1,
          groups=3, scale=1.0),
    _spec("shufflenet_v2", shufflenet_v2, TORCHVISION, 1, scale=1.0),
    _spec("espnetv2", espnetv2, "paper: ESPNetv2, Figs. 1-2 (EESP, strided EESP); the authors' ImageNet table", 1,
          scale=1.0),
    _spec("efficientnet_b0", Torchvision("efficientnet_b0"), TORCHVISION, 1),
    _spec("ghostnet", Timm("ghostnet_100"), TIMM, 1),  # GhostNet 1.0x
    _spec("fbnet_c", Timm("fbnetc_100"), TIMM, 1),
    _spec("densenet121", Torchvision("densenet121"), TORCHVISION, 29),
    _spec("densenet_bc", densenet_bc, "paper: DenseNet, Sec. 3 / Table 2 (DenseNet-BC, CIFAR)", 4,
          growth_rate=12, depth=100),
    _spec("resnet50", Torchvision("resnet50"), TORCHVISION, 1),
    _spec("resnext50_32x4d", Torchvision("resnext50_32x4d"), TORCHVISION, 1),
    # The large CNNs whose data-parallel scaling is published (e.g. Horovod's VGG-16 / ResNet-101 /
    # Inception V3 figures), to put commbench's predictions beside.
    _spec("vgg16", Torchvision("vgg16"), TORCHVISION, 32),
    _spec("resnet101", Torchvision("resnet101"), TORCHVISION, 1),
    # aux_logits: the published 27,161,264 includes the auxiliary classifier, which runs only in
    # training and needs a 17x17 Mixed_6e map: 299 px (75 px in eval).  init_weights=False: the same
    # parameters, half the build time (truncated-normal init), and no FutureWarning.
    _spec("inception_v3", Torchvision("inception_v3", (("aux_logits", True), ("init_weights", False))),
          TORCHVISION, 299),
])


def get_spec(name: str) -> ModelSpec:
    """A zoo model by its name, or a library's or a user's model by <source>/<name> (checked: the
    library has it, the factory imports; ModelSourceError otherwise)."""
    if isinstance(name, str) and name in MODELS:
        return MODELS[name]
    if not isinstance(name, str) or not sources.split(name)[0]:
        raise UnknownModelError(name)
    return _source_spec(name)


@functools.lru_cache(maxsize=None)
def _source_spec(name: str) -> ModelSpec:
    sources.check(name)
    source = sources.split(name)[0]
    return ModelSpec(name, sources.builder(name), source, None, open=True)


def variant_kwargs(spec: ModelSpec, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """spec.defaults overridden by kwargs; a kwarg a zoo model does not have is a TypeError."""
    unknown = sorted(set(kwargs) - set(spec.defaults) - {"num_classes"})
    if unknown and not spec.open:
        valid = ", ".join(spec.defaults) or "none"
        raise TypeError(f"model {spec.name!r} has no option {unknown[0]!r}; valid options: {valid}")
    return {**spec.defaults, **kwargs}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """The model with these keyword arguments (num_classes and the variant); the builder's defaults
    for the rest. A user's factory gets exactly the keys given."""
    spec = get_spec(name)
    num_classes = kwargs.get("num_classes", 1)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return spec.build(**variant_kwargs(spec, kwargs))


def count_params(model: nn.Module) -> int:
    """Trainable parameters (what data-parallel training all-reduces each step)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_params_meta(name: str, **kwargs: Any) -> int:
    """count_params of the model built on the meta device: shapes only, no weights allocated."""
    import torch

    with torch.device("meta"):
        return count_params(build_model(name, **kwargs))
