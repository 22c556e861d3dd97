"""`commbench models`: the zoo, as conf/model/*.yaml configures each model, and any torchvision or timm
model or a factory of yours named beside it; parameters counted on the meta device (no weights
allocated). A library model's row is a pure function of the installed torch, torchvision and timm, the
zoo's code and its configs, so it is kept in a cache keyed by exactly those: a second listing imports
no torch. A factory's row is counted anew: its code is not in that key."""

from __future__ import annotations

from typing import Any

from commbench.commands.common import emit
from commbench.errors import fail, first_line
from commbench.options import FORMAT, Command, Option

COMMAND = Command("models", "List the model zoo (and any model named): parameters, fp32 gradient bytes per step, "
                  "minimum image size, source.",
                  (Option("add", lambda text: [m for m in text.split(",") if m], [],
                          "models beside the zoo, comma-separated <source>/<name>: torchvision/regnet_y_400mf, "
                          "timm/ghostnet_130, custom/package.module.factory"), FORMAT),
                  examples=("models", "models add=timm/ghostnet_130,torchvision/efficientnet_b2", "models format=json"))


def row(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    from commbench.models import count_params_meta, get_spec, min_image_size

    spec = get_spec(name)
    variant = {k: v for k, v in kwargs.items() if k != "num_classes"}
    params = count_params_meta(name, **kwargs)
    return {"model": name, "params": params, "grad_bytes_per_step": 4 * params,
            "num_classes": kwargs.get("num_classes"), "variant": variant,
            "min_image_size": None if spec.open else min_image_size(name, **variant), "source": spec.source}


def zoo_rows() -> list[dict[str, Any]]:
    from commbench.config import model_conf
    from commbench.models import MODELS

    return [row(name, model_conf(name)) for name in MODELS]


def added_row(name: str) -> dict[str, Any]:
    """A model named beside the zoo, with its builder's defaults (a library's: 1000 classes)."""
    from commbench.cache import cached
    from commbench.models import MODEL_ERRORS, get_spec

    try:
        if get_spec(name).source == "custom":  # its code is not in the cache's key: counted anew
            return row(name, {})
        return cached(f"model-{name.replace('/', '__')}", lambda: row(name, {}))
    except MODEL_ERRORS as exc:
        fail(str(exc))
    except (TypeError, ValueError, RuntimeError) as exc:  # a factory's own error, or arguments it lacks
        fail(f"{name} does not build: {first_line(exc)}")


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.cache import cached
    from commbench.sinks.console import models_table

    rows = cached("zoo", zoo_rows) + [added_row(name) for name in opts["add"]]
    emit(rows, opts["format"], lambda: models_table(rows))
