"""The command line without Ray: the zoo listing, one-line errors, and config discovery in a source
checkout, an editable install and a regular install.

Errors are checked with Ray made unimportable (a `ray` package first on PYTHONPATH that fails on import),
so each must come before Ray starts, and no record is written; `check` lists a sweep's cells without Ray and
writes nothing; the zoo listing is cached, a second listing importing no torch; meta-device counts equal the
real models'."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from commbench.models import MODELS, build_model, count_params

REPO = Path(__file__).resolve().parents[1]


def commbench(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "commbench", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def no_ray_env(tmp_path_factory):
    """An environment in which importing Ray fails loudly: proves errors come before Ray starts."""
    fake = tmp_path_factory.mktemp("fake_ray") / "ray"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('Ray was imported before the input was checked')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(REPO)])}


def test_models_json_lists_the_zoo():
    out = commbench("models", "format=json")
    assert out.returncode == 0, out.stderr
    rows = {r["model"]: r for r in json.loads(out.stdout)}
    assert list(rows) == list(MODELS)
    sq = rows["squeezenet"]
    assert (sq["params"], sq["grad_bytes_per_step"], sq["min_image_size"]) == (1248424, 4993696, 21)
    assert rows["alexnet"]["min_image_size"] == 63 and rows["alexnet"]["source"] == "torchvision"
    assert rows["squeezenext"]["source"].startswith("paper:")
    # densenet_bc's config says CIFAR-10: the listing counts what a run would train.
    assert rows["densenet_bc"]["num_classes"] == 10
    assert rows["densenet_bc"]["params"] == count_params(build_model("densenet_bc", num_classes=10))


def test_models_table_names_every_model():
    out = commbench("models")
    assert out.returncode == 0, out.stderr
    for name in MODELS:
        assert name in out.stdout


@pytest.mark.parametrize("args, message", [
    (["model=zfnet"], "commbench: error: unknown model 'zfnet' (did you mean 'fbnet_c'?); known: alexnet, "),
    (["-m", "model=alexnet,zfnet", "nodes=1,2"], "commbench: error: unknown model 'zfnet'"),
    (["nodes=0"], "commbench: error: nodes must be an integer >= 1, got 0"),
    (["nodes=two"], "commbench: error: nodes must be an integer >= 1, got 'two'"),
    (["steps=0"], "commbench: error: steps must be an integer >= 1, got 0"),
    (["batch_size=-1"], "commbench: error: batch_size must be an integer >= 1, got -1"),
    (["model=alexnet", "image_size=32"], "commbench: error: image_size=32 is too small for alexnet: its minimum is 63"),
    (["cluster=slurn"], "commbench: error: unknown cluster 'slurn' (did you mean 'slurm'?); known: compose, emulated, "
                        "kuberay, local, ray, slurm"),
    (["cluster=slurm"], "commbench: error: cluster=slurm joins a running Ray cluster: set cluster.address="),
    (["check", "cluster=compose", "model=squeezenett"], "commbench: error: unknown model 'squeezenett'"),
    (["models", "format=xml"], "commbench: error: format must be one of table, json, got 'xml'"),
])
def test_bad_input_one_line_nonzero_exit_before_ray(args, message, no_ray_env, tmp_path):
    extra = [] if args[0] == "models" else [f"results_dir={tmp_path}"]
    out = commbench(*args, *extra, env=no_ray_env)
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith(message), out.stderr
    assert not (tmp_path / "runs.jsonl").exists()


def test_check_lists_a_sweeps_cells_without_ray(no_ray_env, tmp_path):
    results = tmp_path / "not-yet"
    out = commbench("check", "-m", "model=alexnet,squeezenet", "nodes=1,2", "cluster=slurm",
                    "cluster.address=10.0.0.1:6379", f"results_dir={results}", env=no_ray_env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [l.split(":")[0] for l in lines[:4]] == [
        f"{m} nodes={n} compression=none on slurm 10.0.0.1" for m in ("alexnet", "squeezenet") for n in (1, 2)]
    assert lines[4] == f"4 cell(s) valid; results go to {results}"
    assert not results.exists()  # a check writes nothing


def test_unwritable_results_dir_is_one_line(no_ray_env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = commbench(f"results_dir={blocker}/sub", env=no_ray_env)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"commbench: error: results_dir '{blocker}/sub' is not writable: Not a directory"]


def cfg_job_model(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, out.stderr
    return next(l for l in out.stdout.splitlines() if l.strip().startswith("name:")).split()[-1]


def test_source_checkout_finds_conf(tmp_path):
    """A plain checkout: no install, the editable install's finder taken out of the way."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "commbench", checkout / "commbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf", checkout / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / "conf" / "model" / "squeezenet.yaml").write_text("name: squeezenet1_1\nnum_classes: 1000\n")
    code = ("import sys, runpy; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')];"
            "sys.argv = ['commbench', '--cfg', 'job']; runpy.run_module('commbench', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, timeout=120)
    assert cfg_job_model(out) == "squeezenet1_1"  # the checkout's own conf/, not an installed copy


def test_editable_or_installed_console_script_finds_conf(tmp_path):
    script = shutil.which("commbench")
    if script is None:
        pytest.skip("commbench is not installed (pip install -e '.[dev]')")
    out = subprocess.run([script, "--cfg", "job"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert cfg_job_model(out) == "squeezenet"


def test_regular_install_finds_conf(tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert (target / "commbench" / "conf" / "model" / "alexnet.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    out = subprocess.run([sys.executable, "-m", "commbench", "--cfg", "job", "model=alexnet"], cwd=run_dir,
                         env=env, capture_output=True, text=True, timeout=120)
    assert cfg_job_model(out) == "alexnet"
    out = subprocess.run([str(target / "bin" / "commbench"), "models"], cwd=run_dir, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "alexnet" in out.stdout
    # Every module of the checkout made it into the installed package.
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                     for p in (REPO / "commbench").rglob("*.py"))  # a package by its name, as code imports it
    code = f"import importlib; [importlib.import_module(m) for m in {modules!r}]; import commbench; print(commbench.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=run_dir, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith(str(target))


def test_models_listing_is_cached_and_a_second_listing_imports_no_torch(tmp_path, monkeypatch):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = commbench("models", "format=json", env=env)
    assert first.returncode == 0, first.stderr
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch imported for a cached listing')\n")
    second = commbench("models", "format=json", env={**env, "PYTHONPATH": f"{fake.parent}{os.pathsep}{REPO}"})
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)
    # The key covers what the listing depends on: another torch is another cache file.
    from commbench import cache

    key = cache.cache_key()
    monkeypatch.setattr(cache.metadata, "version", lambda package: "0.0-other")
    cache.cache_key.cache_clear()  # computed once per process
    try:
        assert cache.cache_key() != key
    finally:
        cache.cache_key.cache_clear()


def test_meta_device_counts_equal_real_models():
    from commbench.models import count_params_meta

    for name in MODELS:
        assert count_params_meta(name) == count_params(build_model(name)), name
