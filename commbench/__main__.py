"""Entry point: `python -m commbench [run|models] key=value ...` (also the `commbench` script).

`run` (the default) is a Hydra app over conf/; `-m` sweeps, one record per cell.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, NoReturn

from commbench.config import config_files, config_path

def fail(message: str, code: int = 2) -> NoReturn:
    print(f"commbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def precheck_overrides(argv: list[str]) -> None:
    """What Hydra would answer with a screenful (an unknown config option, an unwritable output
    folder: Hydra writes its logs under results_dir before any task runs), said in one line."""
    from omegaconf import OmegaConf

    from commbench.plan import PlanError, writable_dir

    results_dir = OmegaConf.load(config_files(".")["config"].open()).get("results_dir")
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if key == "results_dir" and sep:
            results_dir = value
        if not sep or "/" in key or key not in ("model", "cluster", "compression"):
            continue
        known = config_files(key)
        for name in value.split(","):
            if name and "(" not in value and name not in known:
                fail(f"unknown {key} {name!r}; known: {', '.join(sorted(known))}")
    try:
        writable_dir(results_dir)
    except PlanError as exc:
        fail(str(exc))


def run_cell(cfg: dict[str, Any]) -> None:
    """One run (one sweep cell): plan, skip if recorded, run on Ray, append the record, print it."""
    from commbench.plan import PlanError, make_plan
    from commbench.records import append_record, failed_record, finished_hashes

    try:
        plan = make_plan(cfg)
    except PlanError as exc:
        fail(str(exc))
    if plan.resume and plan.config_hash() in finished_hashes(plan.runs_file):
        print(f"commbench: skip {plan.model} nodes={plan.nodes}: config_hash {plan.config_hash()} "
              f"already recorded in {plan.runs_file} (resume=true)")
        return

    from commbench import runner
    from commbench.sinks.console import print_run

    try:
        record = runner.run(plan)
    except PlanError as exc:
        fail(str(exc))
    except runner.RunError as exc:
        append_record(plan.runs_file, failed_record(plan, str(exc)))
        fail(f"{plan.model} nodes={plan.nodes}: {exc} (recorded as failed in {plan.runs_file})")
    append_record(plan.runs_file, record)
    print_run(record, str(plan.runs_file))


def run_hydra(argv: list[str]) -> None:
    import hydra
    from omegaconf import OmegaConf

    precheck_overrides(argv)

    @hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
    def app(cfg) -> None:
        run_cell(OmegaConf.to_container(cfg, resolve=True))

    sys.argv = [sys.argv[0], *argv]
    app()


def zoo_rows() -> list[dict[str, Any]]:
    """Every model as its conf/model/*.yaml configures it."""
    from omegaconf import OmegaConf

    from commbench.models import MODELS, build_model, count_params, get_spec, min_image_size

    confs = config_files("model")
    rows = []
    for name in MODELS:
        kwargs = OmegaConf.to_container(OmegaConf.create(confs[name].read_text())) if name in confs else {}
        kwargs.pop("name", None)
        variant = {k: v for k, v in kwargs.items() if k != "num_classes"}
        params = count_params(build_model(name, **kwargs))
        rows.append({"model": name, "params": params, "grad_bytes_per_step": 4 * params,
                     "num_classes": kwargs.get("num_classes", 1000), "variant": variant,
                     "min_image_size": min_image_size(name, **variant), "source": get_spec(name).source})
    return rows


def options(argv: list[str], allowed: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """key=value arguments of a subcommand, checked against the allowed values."""
    out = {k: v[0] for k, v in allowed.items()}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            fail(f"unexpected argument {arg!r}; expected: " + " ".join(f"{k}={'|'.join(v)}" for k, v in allowed.items()))
        if value not in allowed[key]:
            fail(f"{key} must be one of {', '.join(allowed[key])}, got {value!r}")
        out[key] = value
    return out


def cmd_models(argv: list[str]) -> None:
    fmt = options(argv, {"format": ("table", "json")})["format"]
    rows = zoo_rows()
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    from commbench.sinks.console import console, models_table

    console.print(models_table(rows))


BENCH_DEFAULTS = ["model=squeezenet", "nodes=2", "steps=10", "warmup=3"]
WALL_RUN = ["model=squeezenet", "nodes=8", "steps=20"]


def cmd_bench(argv: list[str]) -> None:
    """`bench [rounds=N] [wall=true|false] [run overrides]`: hook overhead and wall time, as ratios."""
    from commbench.bench import hook_overhead, wall_time
    from commbench.config import compose
    from commbench.plan import PlanError, make_plan
    from commbench.records import append_record

    ours = {k: v for k, _, v in (a.partition("=") for a in argv) if k in ("rounds", "wall")}
    overrides = BENCH_DEFAULTS + [a for a in argv if a.partition("=")[0] not in ours]
    if not ours.get("rounds", "5").isdigit() or int(ours.get("rounds", "5")) < 1:
        fail(f"rounds must be an integer >= 1, got {ours['rounds']!r}")
    if ours.get("wall", "true") not in ("true", "false"):
        fail(f"wall must be true or false, got {ours['wall']!r}")
    precheck_overrides(overrides)
    try:
        plan = make_plan(compose(overrides))
    except PlanError as exc:
        fail(str(exc))
    result = {"bench": "hook_overhead", **hook_overhead(plan, int(ours.get("rounds", "5")))}
    append_record(plan.runs_file.with_name("bench.jsonl"), result)
    print(json.dumps(result, indent=2))
    if ours.get("wall", "true") == "true":
        result = {"bench": "wall_time", **wall_time(WALL_RUN)}
        append_record(plan.runs_file.with_name("bench.jsonl"), result)
        print(json.dumps(result, indent=2))


SUBCOMMANDS: dict[str, Callable[[list[str]], None]] = {"models": cmd_models, "run": run_hydra, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        SUBCOMMANDS[argv[0]](argv[1:])
    else:
        run_hydra(argv)


if __name__ == "__main__":
    main()
