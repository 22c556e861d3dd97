"""The package's shape: no import cycle anywhere in commbench/ (function-level imports included),
the layers of the data path import only downwards, and modules stay small.

Also: no module passes 300 lines, nothing patches torch process-wide, no source file is git-ignored, and
every package is in the distribution. README.md's layout block describes the same shape."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "commbench"
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The commbench modules `name` imports, at the top or inside functions (the module itself, not
    the package above it, for `from commbench.x import y`)."""
    tree = ast.parse(MODULES[name].read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .registry import ...
                package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in MODULES and t != name}
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def find_cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_function_level_imports():
    # commands.run imports the runner inside run_cell: the walk must see it, or cycles could hide there.
    assert "commbench.runner" in GRAPH["commbench.commands.run"]
    assert "commbench.models.registry" in GRAPH["commbench.models"]


def test_no_import_cycle():
    assert find_cycle() is None, " -> ".join(find_cycle())


# The data path, top to bottom (../shared/DESIGN.md): a module may import only its own layer or below.
LAYERS = [
    ("commbench.__main__",),
    ("commbench.commands",),
    ("commbench.overrides", "commbench.sweep", "commbench.bench"),
    ("commbench.pool",),
    ("commbench.runner",),
    ("commbench.plan",),
    ("commbench.cluster",),
    ("commbench.worker", "commbench.record"),
    ("commbench.models", "commbench.comm"),
    ("commbench.sinks",),
    ("commbench.results",),
    ("commbench.timeline",),
    ("commbench.netmodel", "commbench.overheads"),
    ("commbench.config", "commbench.options", "commbench.units", "commbench.errors", "commbench.host",
     "commbench.stats", "commbench.split", "commbench.framing", "commbench.cache", "commbench.settings"),
]


def layer(name: str) -> int:
    for depth, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return depth
    return len(LAYERS)  # the package's own __init__


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "commbench"))
def test_imports_go_down_the_data_path(name):
    upward = sorted(t for t in GRAPH[name] if layer(t) < layer(name))
    assert not upward, f"{name} (layer {layer(name)}) imports {upward} from above it"


def test_modules_are_small():
    big = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert {n: c for n, c in big.items() if c > MAX_LINES} == {}


def test_no_process_wide_patching_of_torch():
    """Counting PowerSGD's collectives uses a private copy of its module: torch's stays as it was."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

    from commbench.comm.compression import hook_for
    from commbench.comm.hooks import ByteCounter

    state, hook = hook_for("powersgd", {"rank": 2, "start_iter": 2, "min_compression_rate": 2}, ByteCounter(2))
    assert powerSGD_hook.dist is dist and default_hooks.dist is dist
    assert type(state).__module__ == powerSGD_hook.__name__ and type(state) is not powerSGD_hook.PowerSGDState


def test_no_source_file_is_git_ignored():
    """A clean clone must hold every module: an ignore rule meant for output folders (results/)
    once matched commbench/results/ and CI's clone lacked the package."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (PACKAGE.parent / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*") if p.suffix in {".py", ".yaml"}]
    files += [str(p.relative_to(PACKAGE.parent)) for p in (PACKAGE.parent / "conf").rglob("*.yaml")]
    out = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=PACKAGE.parent,
                         capture_output=True, text=True)
    assert out.stdout.split() == []


def test_every_package_is_in_the_distribution():
    """A regular install ships only the packages pyproject.toml lists: a new subpackage left out of
    the list imports from a checkout and fails once installed."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set()
