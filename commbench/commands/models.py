"""`commbench models`: the zoo, as conf/model/*.yaml configures each model, parameters counted on the
meta device (no weights allocated)."""

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


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.sinks.console import models_table
    rows = zoo_rows()
    emit(rows, opts["format"], lambda: models_table(rows))
