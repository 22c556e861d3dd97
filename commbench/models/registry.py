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

if TYPE_CHECKING:
    import torch
    from torch import nn

TORCHVISION = "torchvision"


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
    name: str                        # registry key
    build: Callable[..., nn.Module]  # build(num_classes=1000, **variant_kwargs)
    source: str                      # "torchvision" or "paper: <short title>, <table/section>"
    min_image_size: int              # smallest H=W the default variant accepts (measured)
    defaults: Mapping[str, Any] = field(default_factory=FrozenDict)  # default variant kwargs

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", FrozenDict(self.defaults))


class UnknownModelError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:  # KeyError would repr() the message; keep it one plain line
        return f"unknown model {self.name!r}; known: {', '.join(MODELS)}"


@dataclass(frozen=True)
class _Own:
    """Builder for a model of this package (a family torchvision lacks), imported when built: the
    registry itself imports no torch, so a plan is checked without it."""

    module: str
    fn: str

    def __call__(self, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
        return getattr(importlib.import_module(f"commbench.models.{self.module}"), self.fn)(num_classes, **kwargs)


densenet_bc, mobilenet_v1, shufflenet_v1, squeezenext = (
    _Own(name, name) for name in ("densenet_bc", "mobilenet_v1", "shufflenet_v1", "squeezenext"))
squeezenet_simple_bypass = _Own("squeezenet", "squeezenet_simple_bypass")
squeezenet_complex_bypass = _Own("squeezenet", "squeezenet_complex_bypass")


@dataclass(frozen=True)
class _Torchvision:
    """Builder for a torchvision model; a dataclass so specs pickle and compare by value.
    ``fixed``: constructor arguments that are part of the architecture, not a variant."""

    fn: str
    fixed: Mapping[str, Any] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed", FrozenDict(self.fixed))

    def __call__(self, num_classes: int = 1000) -> nn.Module:
        import torchvision.models as tvm  # only where a torchvision model is built: it costs ~1.6 s to import

        return getattr(tvm, self.fn)(weights=None, num_classes=num_classes, **self.fixed)  # never download weights


_SHUFFLENET_V2 = {0.5: "shufflenet_v2_x0_5", 1.0: "shufflenet_v2_x1_0",
                  1.5: "shufflenet_v2_x1_5", 2.0: "shufflenet_v2_x2_0"}


def shufflenet_v2(num_classes: int = 1000, scale: float = 1.0) -> nn.Module:
    if scale not in _SHUFFLENET_V2:
        raise ValueError(f"shufflenet_v2 scale must be one of {sorted(_SHUFFLENET_V2)}, got {scale!r}")
    return _Torchvision(_SHUFFLENET_V2[scale])(num_classes=num_classes)


def _spec(name, build, source, min_image_size, **defaults) -> tuple[str, ModelSpec]:
    return name, ModelSpec(name, build, source, min_image_size, defaults)


# Order matters: AlexNet (the baseline), the SqueezeNet family, the other compact CNNs, then the large ones.
MODELS: dict[str, ModelSpec] = dict([
    _spec("alexnet", _Torchvision("alexnet"), TORCHVISION, 63),
    _spec("squeezenet", _Torchvision("squeezenet1_0"), TORCHVISION, 21),
    _spec("squeezenet1_1", _Torchvision("squeezenet1_1"), TORCHVISION, 17),
    _spec("squeezenet_simple_bypass", squeezenet_simple_bypass,
          "paper: SqueezeNet, Sec. 6 / Fig. 2 (simple bypass) / Table 3", 21),
    _spec("squeezenet_complex_bypass", squeezenet_complex_bypass,
          "paper: SqueezeNet, Sec. 6 / Fig. 2 (complex bypass) / Table 3", 21),
    _spec("squeezenext", squeezenext,
          "paper: SqueezeNext, Sec. 3 (SqNxt block), 1.0-SqNxt-23 reference prototxt", 9,
          width=1.0, depth=23),
    _spec("mobilenet_v1", mobilenet_v1, "paper: MobileNets, Table 1 (body) / Table 6 (width)", 1,
          alpha=1.0),
    _spec("mobilenet_v2", _Torchvision("mobilenet_v2"), TORCHVISION, 1),
    _spec("mobilenet_v3_small", _Torchvision("mobilenet_v3_small"), TORCHVISION, 1),
    _spec("mobilenet_v3_large", _Torchvision("mobilenet_v3_large"), TORCHVISION, 1),
    _spec("shufflenet_v1", shufflenet_v1, "paper: ShuffleNet, Table 1 / Sec. 3.3", 1,
          groups=3, scale=1.0),
    _spec("shufflenet_v2", shufflenet_v2, TORCHVISION, 1, scale=1.0),
    _spec("densenet121", _Torchvision("densenet121"), TORCHVISION, 29),
    _spec("densenet_bc", densenet_bc, "paper: DenseNet, Sec. 3 / Table 2 (DenseNet-BC, CIFAR)", 4,
          growth_rate=12, depth=100),
    _spec("resnet50", _Torchvision("resnet50"), TORCHVISION, 1),
    _spec("resnext50_32x4d", _Torchvision("resnext50_32x4d"), TORCHVISION, 1),
    # The large CNNs whose data-parallel scaling is published (e.g. Horovod's VGG-16 / ResNet-101 /
    # Inception V3 figures), to put commbench's predictions beside.
    _spec("vgg16", _Torchvision("vgg16"), TORCHVISION, 32),
    _spec("resnet101", _Torchvision("resnet101"), TORCHVISION, 1),
    # aux_logits: the published 27,161,264 includes the auxiliary classifier, which runs only in
    # training and needs a 17x17 Mixed_6e map: 299 px (75 px in eval).  init_weights=False: the same
    # parameters, half the build time (truncated-normal init), and no FutureWarning.
    _spec("inception_v3", _Torchvision("inception_v3", {"aux_logits": True, "init_weights": False}),
          TORCHVISION, 299),
])


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UnknownModelError(name) from None


def _variant(spec: ModelSpec, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """spec.defaults overridden by kwargs; a kwarg the model does not have is a TypeError."""
    unknown = sorted(set(kwargs) - set(spec.defaults))
    if unknown:
        valid = ", ".join(spec.defaults) or "none"
        raise TypeError(f"model {spec.name!r} has no option {unknown[0]!r}; valid options: {valid}")
    return {**spec.defaults, **kwargs}


def build_model(name: str, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    spec = get_spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return spec.build(num_classes=num_classes, **_variant(spec, kwargs))


def count_params(model: nn.Module) -> int:
    """Trainable parameters (what data-parallel training all-reduces each step)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_params_meta(name: str, num_classes: int = 1000, **kwargs: Any) -> int:
    """count_params of the model built on the meta device: shapes only, no weights allocated."""
    import torch

    with torch.device("meta"):
        return count_params(build_model(name, num_classes=num_classes, **kwargs))


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
        return forward_ok(model.eval(), size) and forward_ok(model.train(), size, batch=2)
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
    """Smallest square input the variant accepts (recorded for defaults, else measured once)."""
    spec = get_spec(name)
    variant = _variant(spec, kwargs)
    if variant == dict(spec.defaults):
        return spec.min_image_size
    return _measured(name, tuple(sorted(variant.items())))
