"""--help for the tool and every subcommand, written from the declarations that parse the options;
and one-line hints for mistyped keys, options of another group and unknown commands.

The hints checked here are the examples in launch/README.md ("The command line: help and one-line
errors")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from commbench.commands import MODULES, module
from commbench.commands.run import RUN_OPTIONS, defaults
from commbench.config import compose
from commbench.overrides import precheck

REPO = Path(__file__).resolve().parents[1]


def commbench(*args: str, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "commbench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_tool_help_lists_commands_and_run_options_with_defaults():
    out = commbench("--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("commbench: how many bytes data-parallel training pushes through the network")
    for name in MODULES:
        assert f"  {name} " in text and module(name).COMMAND.summary in text
    assert "nodes" in text and "(default: 2)" in text and "(default: squeezenet)" in text
    assert "runs.jsonl" in text and "--hydra-help" in text
    assert commbench("-h").stdout == text == commbench("run", "--help").stdout


def test_run_options_are_exactly_the_config_keys():
    """The help's list cannot drift from conf/: every leaf of the default config has a line, and
    every line is a key (or a group) of it."""
    def leaves(tree, prefix=""):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]

    group_names = {"model.name", "cluster.kind", "compression.name"}
    keys = set(leaves(compose([]))) - group_names
    groups = {"model", "cluster", "network", "compression", "logging"}
    assert keys == set(RUN_OPTIONS) - groups
    assert defaults()["nodes"] == 2 and defaults()["compression"] == "none" and defaults()["logging"] == "wandb"


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"run"}))
def test_every_subcommand_has_help(name):
    out = commbench(name, "--help")
    assert out.returncode == 0, out.stderr
    command = module(name).COMMAND
    assert out.stdout.startswith(f"usage: python -m commbench {name}")
    assert command.summary in out.stdout
    for option in command.options:
        line = next(l for l in out.stdout.splitlines() if l.strip().startswith(option.name + " "))
        assert option.help in line and "(default: " in line
    assert "examples:" in out.stdout


def test_hydra_help_is_reachable_and_titled_commbench():
    out = commbench("--hydra-help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("commbench: Hydra's view of its configuration")
    assert "== Configuration groups ==" in out.stdout and "compression:" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["nodez=2"], "unknown option 'nodez' (did you mean 'nodes'?)"),
    (["cluster.adress=h:1"], "unknown option 'cluster.adress' (did you mean 'cluster.address'?)"),
    (["compression.ratio=0.1"], "compression.ratio belongs to compression=topk, not to compression=none"),
    (["model.alpha=0.5"], "model.alpha belongs to model=mobilenet_v1, not to model=squeezenet"),
    (["model=AlexNet"], "unknown model 'AlexNet' (did you mean 'alexnet'?)"),
    (["model=squeezenat"], "unknown model 'squeezenat' (did you mean 'squeezenet'?)"),
    (["+nodez=2"], "'+nodez=2': commbench reads no key that '+' could add"),
    (["compression=fp32"], "compression 'fp32' is called 'none' here: compression=none"),
])
def test_typos_get_a_hint(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        precheck([*args, f"results_dir={tmp_path}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"commbench: error: {message}"), err


def test_good_keys_pass(tmp_path):
    precheck(["model=mobilenet_v1", "model.alpha=0.5", "compression=topk", "compression.ratio=0.1",
              "cluster.threads_per_worker=1", "logging.wandb.mode=disabled", f"results_dir={tmp_path}"])
    precheck(["-m", "model=mobilenet_v1,shufflenet_v1", "model.alpha=0.5", f"results_dir={tmp_path}"])
    # Hydra's own spellings pass: its groups, force-add of a known key, quotes, choice(), --info's value.
    precheck(["hydra/job_logging=disabled", "++nodes=4", "model='alexnet'", f"results_dir={tmp_path}"])
    precheck(["-m", "model=choice(mobilenet_v1,resnet50)", "model.alpha=0.5", f"results_dir={tmp_path}"])
    precheck(["--info", "config", "nodes=2", f"results_dir={tmp_path}"])


def test_a_sweep_hydra_cannot_enumerate_here_is_one_line(capsys, tmp_path):
    from commbench.overrides import checked_cells

    with pytest.raises(SystemExit):
        checked_cells(["-m", "model=glob(squeeze*)", f"results_dir={tmp_path}"])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("commbench: error: model=glob(squeeze*): ") and "list the values" in line


@pytest.mark.parametrize("args, message", [
    (["nodez=2"], "commbench: error: unknown option 'nodez' (did you mean 'nodes'?)"),
    (["predcit"], "commbench: error: unknown command 'predcit' (did you mean 'predict'?)"),
    (["predict", "nodez=4"], "commbench: error: unknown option 'nodez' for predict (did you mean 'nodes'?)"),
])
def test_hints_on_the_command_line_are_one_line(args, message, tmp_path):
    out = commbench(*args, f"results_dir={tmp_path}" if args[0] != "predict" else "format=json")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith(message), out.stderr
    assert not list(tmp_path.iterdir())
