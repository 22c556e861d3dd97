"""The run's key=value overrides, checked before Hydra or Ray see them: an unknown key gets a hint,
an option of another group says which, and a sweep's cells each become a validated plan."""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

from commbench.config import config_files, load
from commbench.errors import PlanError, did_you_mean, fail, first_line

GROUPS = ("model", "cluster", "compression", "network", "logging")
ALIASES = {("compression", "fp32"): "none"}  # what users call an option -> its name here
MULTIRUN_FLAGS = ("-m", "--multirun")
# Hydra's flags that take a value (the config to use; what to print), and those that only print.
VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
               "-cd", "--experimental-rerun", "--shell-completion", "-sc")
INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
PRINT_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--shell-completion", "-sc", "--version")


def _leaves(tree: Any, prefix: str = "") -> set[str]:
    """Every key path of a config tree, inner ones included (ddp, ddp.bucket_cap_mb)."""
    out: set[str] = set()
    if isinstance(tree, dict):
        for k, v in tree.items():
            path = f"{prefix}{k}"
            out |= {path} | _leaves(v, path + ".")
    return out


@cache
def group_keys() -> dict[str, dict[str, set[str]]]:
    """group -> option -> the keys that option's file sets (model -> mobilenet_v1 -> {alpha, ...})."""
    return {g: {name: _leaves(load(f)) for name, f in config_files(g).items()} for g in GROUPS}


@cache
def primary_config() -> dict[str, Any]:
    """conf/config.yaml as written (read once): its defaults list says each group's option."""
    return load(config_files(".")["config"])


@cache
def top_keys() -> set[str]:
    """The declared keys (commbench/settings.py) and the nodes above them, and the groups."""
    from commbench.settings import DECLARED

    return {".".join(key.split(".")[:i]) for key in DECLARED for i in range(1, key.count(".") + 2)} | set(GROUPS)


def default_option(group: str) -> str:
    for entry in primary_config()["defaults"]:
        if isinstance(entry, dict) and group in entry:
            return entry[group]
    return "none"


def chosen_options(chosen: dict[str, list[str]], group: str) -> list[str]:
    return chosen.get(group) or [default_option(group)]


def known_keys(chosen: dict[str, list[str]]) -> set[str]:
    """Every key a run with these group choices reads (a sweep over options: any of them)."""
    keys = set(top_keys())
    for group, options in group_keys().items():
        for option in chosen_options(chosen, group):
            keys |= {f"{group}.{k}" for k in options.get(option, set())}
    return keys


def check_choice(group: str, name: str) -> None:
    known = config_files(group)
    if name in known:
        return
    if (group, name) in ALIASES:
        fail(f"{group} {name!r} is called {ALIASES[group, name]!r} here: {group}={ALIASES[group, name]}")
    lower = {k.lower(): k for k in known}
    hint = f" (did you mean '{lower[name.lower()]}'?)" if name.lower() in lower else did_you_mean(name, known)
    fail(f"unknown {group} {name!r}{hint}; known: {', '.join(sorted(known))}")


def open_models(chosen: dict[str, list[str]]) -> bool:
    """Do the chosen model options pass any keyword argument to their builder (torchvision, timm, custom)?"""
    from commbench.models.sources import SOURCES

    return bool(chosen.get("model")) and set(chosen["model"]) <= set(SOURCES)


def check_key(key: str, chosen: dict[str, list[str]]) -> None:
    known = known_keys(chosen)
    if key in known:
        return
    if key.startswith("model.") and open_models(chosen):
        fail(f"{key} is not in conf/model/{chosen['model'][0]}.yaml: add a keyword argument of the model as +{key}=...")
    group, _, leaf = key.partition(".")
    if group in GROUPS and leaf:
        owners = sorted(o for o, keys in group_keys()[group].items() if leaf in keys)
        if owners:
            this = ",".join(chosen_options(chosen, group))
            fail(f"{key} belongs to {' or '.join(f'{group}={o}' for o in owners)}, not to {group}={this}; "
                 f"choose it first (e.g. {group}={owners[0]} {key}=...)")
    fail(f"unknown option {key!r}{did_you_mean(key, sorted(known))}; python -m commbench --help lists the options")


def options_named(value: str) -> list[str]:
    """The group options a value names: `a`, `a,b`, `choice(a,b)`; none for other sweeps (glob, range)."""
    if value.startswith("choice(") and value.endswith(")"):
        value = value[len("choice("):-1]
    elif "(" in value:
        return []
    return [n.strip().strip("'\"") for n in value.split(",") if n.strip()]


def precheck(argv: list[str]) -> None:
    """What Hydra would answer with a screenful, or silently accept (+nodez=2), said in one line: bad
    group choices, unknown keys, and a results folder that cannot be written."""
    from commbench.plan import writable_dir
    from commbench.settings import default

    pairs, added = [], []
    for arg in overrides_of(argv):
        raw_key, sep, value = arg.partition("=")
        key, value = raw_key.lstrip("+~"), value.strip("'\"")
        if key.startswith(("hydra.", "hydra/")) or key == "hydra":
            continue
        if not key or (not sep and not raw_key.startswith("~")):
            fail(f"cannot read {arg!r}: write key=value")
        if raw_key.startswith("+") and not (raw_key.startswith("++") and key in top_keys() | set(GROUPS)):
            added.append((arg, key))
        else:
            pairs.append((key, value))
    chosen = {k: options_named(v) for k, v in pairs if k in GROUPS}
    for arg, key in added:  # only a library's or a user's model takes keys of its own
        if not (key.startswith("model.") and open_models(chosen)):
            fail(f"{arg!r}: commbench reads no key that '+' could add; set known keys as key=value "
                 "(python -m commbench --help lists them; +model.<key> is for model=torchvision, timm or custom)")
    for key, value in pairs:
        if key in GROUPS:
            for name in options_named(value):
                check_choice(key, name)
        elif not any(key.startswith(f"{g}.") and chosen.get(g) == [] for g in GROUPS):  # a glob(): any option
            check_key(key, chosen)
    results_dir = next((v for k, v in reversed(pairs) if k == "results_dir"), default("results_dir"))
    try:
        writable_dir(results_dir)
    except PlanError as exc:
        fail(str(exc))


def plan_from(overrides: list[str]):
    """Compose and validate a run plan from overrides, failing in one line."""
    from commbench.plan import make_plan

    cfg = composed(overrides)
    try:
        return make_plan(cfg)
    except PlanError as exc:
        fail(str(exc))


def composed(overrides: list[str]) -> dict[str, Any]:
    """The config these overrides make, after precheck; what Hydra or the schema refuses is one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from commbench.config import compose

    precheck(overrides)
    try:
        return compose(overrides)
    except PlanError as exc:
        fail(str(exc))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:  # what Hydra raises for a bad override
        fail(first_line(exc.__cause__ or exc) if "Error merging override" in str(exc) else first_line(exc))


def override_positions(argv: list[str]) -> list[int]:
    """Where the key=value overrides are among Hydra's command-line arguments."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg.startswith("-"):  # a flag, and its value if it takes one (--info takes one optionally)
            skip = arg in VALUE_FLAGS or (arg in ("--info", "-i") and argv[i + 1:i + 2] != []
                                          and argv[i + 1] in INFO_CHOICES)
        else:
            out.append(i)
    return out


def overrides_of(argv: list[str]) -> list[str]:
    """The key=value overrides among Hydra's command-line arguments."""
    return [argv[i] for i in override_positions(argv)]


def nodes_first(argv: list[str]) -> list[str]:
    """The same arguments with `nodes=` as the first override. Hydra's sweeper varies the first
    override slowest, so a sweep then runs its cells world size by world size: each size's worker
    group starts once, serves all of its cells, and is gone before the next size starts."""
    positions = override_positions(argv)  # flags (and their values) stay where they are
    overrides = [argv[i] for i in positions]
    nodes = [a for a in overrides if a.partition("=")[0].lstrip("+~") == "nodes"]
    out = list(argv)
    for i, arg in zip(positions, nodes + [a for a in overrides if a not in nodes]):
        out[i] = arg
    return out


def sweep_cells(argv: list[str]) -> list[list[str]]:
    """The override list of every cell Hydra's basic sweeper makes of these arguments (one cell
    without -m); Hydra's own settings (hydra.*) left out. ValueError says what does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    try:
        overrides = OverridesParser.create().parse_overrides(overrides_of(argv))
    except HydraException as exc:
        raise ValueError(str(exc).strip().splitlines()[0]) from None
    choices = []
    for o in overrides:
        if o.key_or_group.startswith("hydra"):
            continue
        key = ("+" if o.is_add() else "") + o.key_or_group
        if multirun and o.is_sweep_override():
            try:
                choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
            except HydraException as exc:  # glob() and interval() need Hydra's config loader
                raise ValueError(f"{o.input_line}: {first_line(exc)}; list the values (a,b,c) or use range()") from None
        else:
            choices.append([o.input_line])
    return [list(cell) for cell in itertools.product(*choices)]


def checked_cells(argv: list[str]) -> list:
    """Every cell's plan, validated: bad input anywhere in a sweep is one line and exit 2 before the
    first cell starts Ray (Hydra would answer some with a traceback)."""
    precheck(argv)
    if any(a in PRINT_FLAGS for a in argv):  # Hydra prints config or help and runs nothing
        if any(a in MULTIRUN_FLAGS for a in argv):
            fail("-m runs a sweep and --cfg/--info/--hydra-help print the config: give one of them")
        composed(overrides_of(argv))  # a value the schema refuses: one line, not Hydra's screenful
        return []
    try:
        cells = sweep_cells(argv)
    except ValueError as exc:
        fail(str(exc))
    return [plan_from(cell) for cell in cells]
