"""Where conf/ is, and composing it without the command line (tests, `bench`, sweeps)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

SOURCE_CONF = Path(__file__).resolve().parent.parent / "conf"


def config_path() -> str:
    """Where Hydra finds conf/: the package commbench.conf when installed, else the checkout's conf/."""
    try:
        if importlib.util.find_spec("commbench.conf") is not None:
            return "pkg://commbench.conf"
    except ModuleNotFoundError:
        pass
    return str(SOURCE_CONF)


def config_files(group: str) -> dict[str, Any]:
    """Option name -> readable resource, for one config group (pkg:// and a plain folder alike)."""
    from importlib.resources import files

    path = config_path()
    root = files("commbench.conf") if path.startswith("pkg://") else Path(path)
    return {f.name[:-5]: f for f in root.joinpath(group).iterdir() if f.name.endswith(".yaml")}


def compose(overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved config for these overrides, as plain data (what a run's task function sees)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module
    from omegaconf import OmegaConf
    from hydra.errors import ConfigCompositionException

    from commbench.settings import register

    register()
    path = config_path()
    if path.startswith("pkg://"):
        init = initialize_config_module(config_module=path.removeprefix("pkg://"), version_base="1.3")
    else:
        init = initialize_config_dir(config_dir=path, version_base="1.3")
    with init:
        try:
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        except (ConfigCompositionException, OverflowError) as exc:  # among others, a value the schema's types refused
            problem = declared_problem(exc, overrides)
            if problem is exc:
                raise
            raise problem from None
    cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg.pop("hydra", None)
    return cfg


def load(resource) -> dict[str, Any]:
    """A conf file as written, as plain data."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.create(resource.read_text())) or {}


def option_values(group: str, name: str) -> dict[str, Any]:
    """What conf/<group>/<name>.yaml sets besides `name` (a model's build kwargs, a scheme's parameters);
    {} for an option without a file."""
    files = config_files(group)
    values = load(files[name]) if name in files else {}
    values.pop("name", None)
    return values


def model_conf(name: str) -> dict[str, Any]:
    """The build kwargs conf/model/<name>.yaml gives (num_classes and the variant)."""
    return option_values("model", name)


def declared_problem(exc: Exception, overrides: list[str] | tuple[str, ...]) -> Exception:
    """A value the schema's types refused, said as its declaration says it (commbench.settings.check):
    "nodes must be an integer >= 1, got 'eight'"; else Hydra's own error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from commbench.errors import PlanError
    from commbench.settings import DECLARED, check

    key = getattr(exc.__cause__, "full_key", None)  # OmegaConf names it, except for an overflow
    for given in OverridesParser.create().parse_overrides(list(overrides)):
        if given.key_or_group in DECLARED and key in (None, given.key_or_group):
            try:
                check(given.key_or_group, given.value())
            except ValueError as problem:
                return PlanError(str(problem))
    return exc
