"""Models from outside the zoo, named ``<source>/<name>``: any torchvision classification model
(``torchvision/efficientnet_b2``, by torchvision's own registry), any timm model (``timm/ghostnet_130``)
and a user's factory (``custom/package.module.factory``, built as Hydra builds a ``_target_``).

A run chooses one with ``model=torchvision model.name=...``, ``model=timm model.name=...`` or
``model=custom model._target_=...``: conf/model/<source>.yaml. Nothing here imports torch until a model
is listed or built, so the zoo's names resolve without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from commbench.errors import did_you_mean, first_line

if TYPE_CHECKING:
    from torch import nn

SOURCES = ("torchvision", "timm", "custom")
TARGET = "_target_"  # the key a custom factory is given under, as in any Hydra config


class ModelSourceError(ValueError):
    """A name its library does not have, or a factory that does not import: one line, with a hint."""


@dataclass(frozen=True)
class Torchvision:
    """A torchvision model by its registry name (torchvision.models.get_model); never downloads weights.
    ``fixed``: constructor arguments that are part of the architecture, not a variant."""

    name: str
    fixed: tuple[tuple[str, Any], ...] = ()

    def __call__(self, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
        from torchvision.models import get_model  # ~1.6 s to import: only where one is built

        return get_model(self.name, weights=None, num_classes=num_classes, **dict(self.fixed), **kwargs)


@dataclass(frozen=True)
class Timm:
    """A timm model by its registry name (timm.create_model); never downloads weights."""

    name: str

    def __call__(self, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
        import timm

        return timm.create_model(self.name, pretrained=False, num_classes=num_classes, **kwargs)


@dataclass(frozen=True)
class Factory:
    """A user's factory by its import path: Hydra instantiates it with exactly the keys given, so the
    model's classes are whatever it builds (read from its output, see build.probe)."""

    target: str

    def __call__(self, **kwargs: Any) -> nn.Module:
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate
        from torch import nn

        try:
            model = instantiate({TARGET: self.target, **kwargs}, _convert_="all")
        except InstantiationException as exc:  # Hydra's wrapping: the factory's own error is its cause
            raise ModelSourceError(f"model._target_ {self.target!r} does not build: "
                                   f"{first_line(exc.__cause__ or exc)}") from None
        if not isinstance(model, nn.Module):
            raise ModelSourceError(f"model._target_ {self.target!r} returned a {type(model).__name__}, "
                                   "not a torch.nn.Module")
        return model


def names(source: str) -> list[str]:
    """Every model name the library's registry knows (torchvision: its classification models)."""
    if source == "torchvision":
        import torchvision.models as tvm

        return tvm.list_models(module=tvm)
    import timm

    return timm.list_models()


def split(model: str) -> tuple[str, str]:
    """``timm/ghostnet_100`` -> (``timm``, ``ghostnet_100``); a zoo name has no source: ("", name)."""
    source, sep, name = model.partition("/")
    return (source, name) if sep and source in SOURCES else ("", model)


def model_id(cfg_model: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the model's id, its keyword arguments) from the run's model group: a zoo name, or <source>/<name>
    from conf/model/torchvision.yaml, timm.yaml and custom.yaml (a factory's import path as its name)."""
    kwargs = dict(cfg_model)
    source = kwargs.pop("source", None)
    name = kwargs.pop(TARGET if source == "custom" else "name", None)
    return (f"{source}/{name}" if source else name), kwargs


def run_options(model: str) -> list[str]:
    """The run options that choose a model by its id: squeezenet -> [model=squeezenet]; timm/ghostnet_100 ->
    [model=timm, model.name=ghostnet_100]; custom/pkg.nets.tiny -> [model=custom, model._target_=pkg.nets.tiny]."""
    source, name = split(model)
    if not source:
        return [f"model={model}"]
    return [f"model={source}", f"model.{TARGET if source == 'custom' else 'name'}={name}"]


def check(model: str) -> None:
    """The name exists in its library, or the factory imports: else ModelSourceError, one line."""
    source, name = split(model)
    if not name or name == "???":
        what = "model._target_=package.module.factory" if source == "custom" else f"model.name=<a {source} model>"
        raise ModelSourceError(f"model={source} needs {what}")
    if source == "custom":
        _importable(name)
        return
    known = names(source)
    if name not in known and name.partition(".")[0] not in known:  # timm's resnet50.a1_in1k: a weights tag
        listing = "torchvision.models.list_models()" if source == "torchvision" else "timm.list_models()"
        raise ModelSourceError(f"{source} has no model {name!r}{did_you_mean(name, known)}; its names: {listing}")


def _importable(target: str) -> None:
    import logging

    from hydra.utils import get_object

    log = logging.getLogger("hydra.utils")
    level = log.level
    log.setLevel(logging.CRITICAL)  # it logs the failure it raises: said once, below
    try:
        found = get_object(target)
    except Exception as exc:  # Hydra wraps the import's own error; its first line says which part failed
        raise ModelSourceError(f"model._target_ {target!r} does not import: {first_line(exc.__cause__ or exc)} "
                               "(the factory must be importable on the driver and every worker: PYTHONPATH)") from None
    finally:
        log.setLevel(level)
    if not callable(found):
        raise ModelSourceError(f"model._target_ {target!r} is not a callable factory")


def factory_digest(model: str) -> str | None:
    """For a user's factory, a digest of its module's source: what it builds can change while its name
    stays (runs' config_hash and the layout cache follow it). None for the rest."""
    source, target = split(model)
    if source != "custom":
        return None
    import hashlib
    import inspect

    from hydra.utils import get_object

    try:
        text = inspect.getsource(inspect.getmodule(get_object(target)))
    except (OSError, TypeError):  # no source file to read (a compiled module)
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def builder(model: str):
    """The callable that builds a source's model."""
    source, name = split(model)
    return {"torchvision": Torchvision, "timm": Timm, "custom": Factory}[source](name)
