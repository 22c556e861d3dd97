"""Gradient-compression schemes, one module each in this package: the module defines `SCHEME = Scheme(...)`
and its conf file, conf/compression/<name>.yaml, sets `name` and its parameters' defaults; nothing else
names a scheme. SCHEMES is discovered
from the modules. Nothing here imports torch (the plan validates before Ray starts): a scheme's `hook`
imports it when a worker builds the hook (comm/compression.py: hook_for, and the helpers hooks share)."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

SINGLE_BUCKET_MB = 1e5  # bucket_cap_mb that puts every zoo model's gradients in one bucket (100 GB)
COLLECTIVES = ("all_reduce", "all_gather")


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Param:
    """A scheme's parameter (compression.<key>=... on the command line); its default is in the conf file."""

    check: Callable[[Any], bool]
    must_be: str  # what check accepts, for the error: "an integer >= 1"


@dataclass(frozen=True)
class Scheme:
    name: str  # = its module's name and its conf file's (conf/compression/<name>.yaml)
    order: int  # place in listings, --help and compare-compression (none: 0)
    summary: str  # a few words for --help
    # hook(counter, params) -> (state, hook) for DDP.register_comm_hook; every collective through the
    # ByteCounter `counter` (or comm/compression.py's counting helpers). Imports torch itself.
    hook: Callable[[Any, Mapping[str, Any]], tuple[Any, Callable]]
    # Payload bytes one bucket of n fp32 gradient elements hands to its collective, per rank (what the
    # hook counts); None: not priced by a formula (it depends on more than n).
    bucket_bytes: Optional[Callable[[int, Mapping[str, Any]], int]]
    params: Mapping[str, Param] = field(default_factory=dict)
    collective: str = "all_reduce"  # or "all_gather": every rank's encoded bucket; bytes sent grow with N-1
    replayable: bool = False  # a recorded bucket is one all-reduce of a known dtype: replay and predict resend it
    label_param: Optional[str] = None  # the parameter a label shows ("topk ratio=0.01"); records keep them all
    single_bucket: bool = False  # the plan sets ddp.bucket_cap_mb to SINGLE_BUCKET_MB
    late_collectives: bool = False  # issues collectives from its futures' callbacks (hooks.timed counts them)
    # (warmup, params) -> why the plan refuses that warmup, or None
    warmup_check: Optional[Callable[[int, Mapping[str, Any]], Optional[str]]] = None

    def __post_init__(self) -> None:
        if self.collective not in COLLECTIVES:
            raise ValueError(f"scheme {self.name}: collective must be one of {', '.join(COLLECTIVES)}")
        if self.label_param is not None and self.label_param not in self.params:
            raise ValueError(f"scheme {self.name}: label_param {self.label_param!r} is not one of its parameters")

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` with defaults filled in; ValueError names what is wrong."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ValueError(f"compression {self.name} has no parameter {unknown[0]!r}"
                             + (f"; its parameters: {', '.join(self.params)}" if self.params else ""))
        out, defaults = {}, self.defaults()
        for key, param in self.params.items():
            value = params.get(key, defaults.get(key))
            if not param.check(value):
                raise ValueError(f"compression.{key} must be {param.must_be}, got {value!r}")
            out[key] = value
        return out

    def defaults(self) -> dict[str, Any]:
        """Its parameters' defaults: what its conf file, conf/compression/<name>.yaml, sets."""
        return conf_defaults(self.name)

    def warmup_problem(self, warmup: int, params: Mapping[str, Any]) -> Optional[str]:
        return self.warmup_check(warmup, params) if self.warmup_check else None

    def label(self, params: Mapping[str, Any]) -> str:
        """The scheme with its main parameter: "topk ratio=0.01", "fp16"."""
        key = self.label_param
        return self.name + (f" {key}={params[key]}" if key in (params or {}) else "")

    def payload_bytes(self, bucket_numels: Iterable[int], params: Mapping[str, Any]) -> Optional[int]:
        """Payload bytes per rank of one step whose fp32 buckets hold these many elements; None: no formula."""
        if self.bucket_bytes is None:
            return None
        return sum(self.bucket_bytes(n, params) for n in bucket_numels)


@functools.cache
def conf_defaults(name: str) -> dict[str, Any]:
    from commbench.config import option_values

    return option_values("compression", name)


def _discover() -> dict[str, Scheme]:
    from commbench.config import config_files

    found, confs = [], config_files("compression")
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        module = importlib.import_module(f"commbench.comm.schemes.{info.name}")
        scheme = getattr(module, "SCHEME", None)
        if not isinstance(scheme, Scheme) or scheme.name != info.name:
            raise TypeError(f"{module.__name__} must define SCHEME = Scheme(name={info.name!r}, ...)")
        if info.name not in confs:
            raise TypeError(f"{module.__name__} has no conf file: conf/compression/{info.name}.yaml sets its "
                            "name and its parameters' defaults")
        found.append(scheme)
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


SCHEMES: dict[str, Scheme] = _discover()  # name -> spec, in listing order


def validate(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The scheme's parameters with defaults filled in; ValueError names what is wrong."""
    if name not in SCHEMES:
        raise ValueError(f"unknown compression {name!r}; known: {', '.join(SCHEMES)}")
    return SCHEMES[name].validate(params)
