"""`commbench models`: the zoo, as conf/model/*.yaml configures each model, parameters counted on the
meta device (no weights allocated). The listing is a pure function of the installed torch and
torchvision, the zoo's code and its configs, so it is kept in a cache keyed by exactly those: a
second listing imports no torch."""

from __future__ import annotations

from typing import Any

from commbench.commands.common import emit
from commbench.options import FORMAT, Command

COMMAND = Command("models", "List the model zoo: parameters, fp32 gradient bytes per step, minimum image size, "
                  "source.", (FORMAT,), examples=("models", "models format=json"))


def zoo_rows() -> list[dict[str, Any]]:
    from commbench.config import config_files, model_conf
    from commbench.models import MODELS, count_params_meta, get_spec, min_image_size

    confs = config_files("model")
    rows = []
    for name in MODELS:
        kwargs = model_conf(name) if name in confs else {}
        variant = {k: v for k, v in kwargs.items() if k != "num_classes"}
        params = count_params_meta(name, **kwargs)
        rows.append({"model": name, "params": params, "grad_bytes_per_step": 4 * params,
                     "num_classes": kwargs.get("num_classes", 1000), "variant": variant,
                     "min_image_size": min_image_size(name, **variant), "source": get_spec(name).source})
    return rows


def cached_zoo_rows() -> list[dict[str, Any]]:
    from commbench.cache import cached

    return cached("zoo", zoo_rows)


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.sinks.console import models_table

    rows = cached_zoo_rows()
    emit(rows, opts["format"], lambda: models_table(rows))
