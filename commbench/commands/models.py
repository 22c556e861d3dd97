"""`commbench models`: the zoo, as conf/model/*.yaml configures each model, parameters counted on the
meta device (no weights allocated). The listing is a pure function of the installed torch and
torchvision, the zoo's code and its configs, so it is kept in a cache keyed by exactly those: a
second listing imports no torch."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from commbench.commands.common import emit
from commbench.options import FORMAT, Command

COMMAND = Command("models", "List the model zoo: parameters, fp32 gradient bytes per step, minimum image size, "
                  "source.", (FORMAT,), examples=("models", "models format=json"))
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


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


def cache_key() -> str:
    """What the listing depends on: torch and torchvision versions, the zoo's code and conf/model/."""
    from commbench.config import config_files

    digest = hashlib.sha256()
    for package in ("torch", "torchvision"):
        digest.update(f"{package}={metadata.version(package)};".encode())
    for path in sorted(MODELS_DIR.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    for name, resource in sorted(config_files("model").items()):
        digest.update(name.encode() + resource.read_bytes())
    return digest.hexdigest()[:20]


def cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "commbench" / f"zoo-{cache_key()}.json"


def cached_zoo_rows() -> list[dict[str, Any]]:
    path = cache_file()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    rows = zoo_rows()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(path)  # atomic: a concurrent listing reads the old file or the new one
    except OSError:
        pass  # a read-only home: list without caching
    return rows


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.sinks.console import models_table

    rows = cached_zoo_rows()
    emit(rows, opts["format"], lambda: models_table(rows))
