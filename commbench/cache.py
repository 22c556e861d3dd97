"""Figures that are pure functions of the installed torch, torchvision and timm, the zoo's code and its
configs (parameter counts, bucket layouts), kept on disk under a key of exactly those: a second read
imports no torch."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

MODELS_DIR = Path(__file__).resolve().parent / "models"
LAYOUT_CODE = Path(__file__).resolve().parent / "comm" / "buckets.py"


@functools.cache
def cache_key() -> str:
    """What the figures depend on: torch, torchvision and timm versions, the zoo's code and conf/model/, and
    the code that lays out DDP's buckets and profiles backward."""
    from commbench.config import config_files

    digest = hashlib.sha256()
    for package in ("torch", "torchvision", "timm"):
        digest.update(f"{package}={metadata.version(package)};".encode())
    for path in [*sorted(MODELS_DIR.glob("*.py")), LAYOUT_CODE]:
        digest.update(path.name.encode() + path.read_bytes())
    for name, resource in sorted(config_files("model").items()):
        digest.update(name.encode() + resource.read_bytes())
    return digest.hexdigest()[:20]


def cache_file(name: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "commbench" / f"{name}-{cache_key()}.json"


def cached(name: str, make: Callable[[], Any]) -> Any:
    """make()'s JSON-able value, computed once per cache key and kept in the user's cache folder."""
    path = cache_file(name)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    value = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)  # atomic: a concurrent reader sees the old file or the new one
        for stale in path.parent.glob(f"{name}-*.json"):  # under keys of code or packages replaced since
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home: compute without caching
    return value
