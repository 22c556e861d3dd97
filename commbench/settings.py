"""The run's configuration, declared once: typed dataclasses that Hydra holds in its ConfigStore as
the schema of conf/config.yaml (its defaults list names it first). A key's default, type and range
live here, and from them come Hydra's type checks, the plan's one-line errors (`check`) and the
run options of `--help` (`help_lines`). The cluster and logging groups' option files set only what
differs from these; the model, compression and network groups stay open here: their files (and a
compression scheme's module) declare their keys.
"""

from __future__ import annotations

import math
import sys
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Iterator, List, Optional


SCHEMA = "commbench_schema"  # its name in Hydra's ConfigStore
# OmegaConf's MISSING ("???"), spelt out so that reading the declarations imports no OmegaConf: a
# group's node, filled by the option the defaults list chooses.
CHOSEN = "???"


def setting(default: Any, help: str, low: float | None = None, above: float | None = None,
            below: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    """A key's declaration: its default, what it does, and its range (low inclusive; above and below
    exclusive) or its choices. Its type is the field's annotation."""
    return field(default=default, metadata={"help": help, "low": low, "above": above, "below": below,
                                            "choices": choices})


@dataclass
class Failure:
    max_restarts: int = setting(0, "Ray Train restarts of a run whose worker died (from step 0) or whose "
                                   "workers failed to start", low=0)


@dataclass
class Optimizer:
    lr: float = setting(0.001, "SGD learning rate on each worker's fixed synthetic batch", above=0)
    momentum: float = setting(0.0, "SGD momentum", low=0, below=1)


@dataclass
class DDP:
    bucket_cap_mb: float = setting(25.0, "DDP's gradient bucket size (MB)", above=0)
    broadcast_buffers: bool = setting(True, "DDP's per-forward BatchNorm buffer broadcast (counted apart)")


@dataclass
class Cluster:
    kind: str = setting(CHOSEN, "local (embedded Ray), emulated (namespaces + shaped links, root), or a running "
                                "cluster: ray, compose, slurm, kuberay (the option file sets it)")
    address: Optional[str] = setting(None, "HOST:PORT (or auto) of a running Ray cluster; none starts an embedded one")
    workers_per_node: int = setting(1, "with an address: workers each node may hold", low=1)
    cpus_per_worker: Optional[float] = setting(None, "Ray CPUs per worker (logical); none: 1", above=0)
    threads_per_worker: Optional[int] = setting(None, "torch threads per worker; none: 1 on this machine, a node's "
                                                      "cores / its workers on a cluster", low=1)


@dataclass
class Wandb:
    mode: str = setting("offline", "offline writes files under results_dir/wandb (no account)",
                        choices=("offline", "online", "disabled"))
    project: str = setting("commbench", "W&B project")
    entity: Optional[str] = setting(None, "W&B user or team (online)")
    group: Optional[str] = setting(None, "W&B group; none: the sweep's folder name")
    tags: List[str] = field(default_factory=list, metadata={"help": "tags added to the automatic ones"})
    init_timeout_s: float = setting(30.0, "online: seconds to wait for the server", above=0)
    finish_timeout_s: float = setting(120.0, "online: seconds a run's end waits for uploads", above=0)
    required: bool = setting(False, "true: a W&B that cannot work is an error before Ray starts")


@dataclass
class Logging:
    wandb: Wandb = field(default_factory=Wandb)


@dataclass
class Run:
    nodes: int = setting(2, "data-parallel workers; 1 is the scaling baseline", low=1)
    steps: int = setting(20, "timed steps", low=1)
    warmup: int = setting(3, "untimed steps first (DDP rebuilds its buckets after the first)", low=1)
    batch_size: int = setting(8, "synthetic samples per worker per step", low=1)
    image_size: int = setting(64, "square synthetic input (bytes do not depend on it; compute does)", low=1)
    seed: int = setting(0, "weights and synthetic data", low=0)
    use_gpu: bool = setting(False, "nccl on GPUs instead of gloo on CPU")
    results_dir: str = setting("results", "where runs.jsonl, busbw.jsonl, replay.jsonl and the report go")
    resume: bool = setting(True, "skip a run whose config_hash already has a successful record")
    collective_timeout_s: float = setting(120.0, "process-group timeout: a dead peer fails the run, never hangs it",
                                          above=0)
    failure: Failure = field(default_factory=Failure)
    optimizer: Optimizer = field(default_factory=Optimizer)
    ddp: DDP = field(default_factory=DDP)
    cluster: Cluster = field(default_factory=Cluster)
    logging: Logging = field(default_factory=Logging)  # its options (wandb, none) set the mode
    # Groups whose options are files; their keys are declared there.
    model: Any = CHOSEN
    compression: Any = CHOSEN
    network: Any = CHOSEN


def register() -> None:
    """Put the schema in Hydra's ConfigStore (idempotent): before any compose or hydra.main."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA, node=Run)


def declared(node: type = Run, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, dataclass field) of every declared leaf: nodes, ddp.bucket_cap_mb, cluster.kind, ..."""
    for f in fields(node):
        kind = f.default_factory if f.default_factory is not MISSING else None
        if is_dataclass(kind):
            yield from declared(kind, f"{prefix}{f.name}.")
        elif "help" in f.metadata:
            yield f"{prefix}{f.name}", f


DECLARED = dict(declared())


def default(key: str) -> Any:
    f = DECLARED[key]
    return f.default_factory() if f.default is MISSING else f.default


def help_lines() -> dict[str, str]:
    """key -> what it does, and what it must be where its declaration bounds it."""
    return {key: f.metadata["help"] + (f" [{_range(f.metadata).strip()}]" if _range(f.metadata) else "")
            for key, f in DECLARED.items()}


def _range(meta: dict[str, Any]) -> str:
    if meta.get("choices"):
        return f" one of {', '.join(meta['choices'])}"
    low, above, below = meta.get("low"), meta.get("above"), meta.get("below")
    if low is not None and below is not None:
        return f" in [{low:g}, {below:g})"
    if low is not None:
        return f" >= {low:g}"
    return f" > {above:g}" if above is not None else ""


def check(key: str, value: Any) -> Any:
    """The value as its declaration types it (an int as a float where a number is declared), or
    ValueError with the one line that says what the key must be."""
    f = DECLARED[key]
    optional = f.type.startswith("Optional[")
    kind = f.type[len("Optional["):-1] if optional else f.type
    if value is None and optional:
        return None
    meta = {"low": None, "above": None, "below": None, "choices": (), **f.metadata}
    what = "" if meta["choices"] else {"int": "an integer", "float": "a number", "bool": "true or false",
                                        "str": "a string", "List[str]": "a list, e.g. [a,b]"}[kind]
    problem = ValueError(f"{key} must be {(what + _range(meta)).strip()}, got {value!r}")
    if kind == "List[str]":
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise problem
        return [str(v) for v in value]
    if kind == "bool" or kind == "str":
        if not isinstance(value, {"bool": bool, "str": str}[kind]) or (meta["choices"] and value not in meta["choices"]):
            raise problem
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # bool is an int in Python
        raise problem
    if kind == "int":
        if not isinstance(value, int):  # 2.0 too, as Hydra's typed config refuses it
            raise problem
    else:  # <= float_info.max: inf, nan and an int too big for a float would crash the run later
        if not -sys.float_info.max <= value <= sys.float_info.max or math.isnan(value):
            raise problem
        value = float(value)
    if ((meta["low"] is not None and value < meta["low"]) or (meta["above"] is not None and value <= meta["above"])
            or (meta["below"] is not None and value >= meta["below"])):
        raise problem
    return value
