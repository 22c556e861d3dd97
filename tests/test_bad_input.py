"""Bad input, property-based: whatever the config values, a run either gets a valid RunPlan or stops
with one clear error line and exit code 2 -- never a traceback, never a hang, and never a byte in
the results file.

Three layers, cheapest first:
- parse_bandwidth / parse_latency on arbitrary text and numbers (thousands of examples);
- make_plan on the composed default config with fields replaced by arbitrary values (what Hydra
  can hand over: ints of any size, floats incl. inf/nan, bools, None, text, lists, dicts);
- cli.plan_from on override strings (the CLI's own path: precheck, Hydra's override grammar,
  compose, make_plan), 100 examples since each compose costs ~0.1 s;
plus a handful of real `python -m commbench ...` subprocesses, run two at a time.

This is the check behind the refused input that launch/README.md lists ("An existing cluster, and bad
input").
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from commbench.overrides import plan_from
from commbench.comm.schemes import SCHEMES, SINGLE_BUCKET_MB
from commbench.config import compose, config_files, model_conf
from commbench.models import MODELS, min_image_size
from commbench.models.sources import SOURCES
from commbench.units import NetworkSpecError, parse_bandwidth, parse_latency
from commbench.plan import PlanError, RunPlan, make_plan

REPO = Path(__file__).resolve().parents[1]
ERROR_PREFIX = "commbench: error: "
HANG_S = 30  # one example (one compose + plan) takes well under a second; this long is a hang

MODEL_NAMES = sorted(MODELS)  # the zoo; conf/model/ also has torchvision, timm and custom (any model)
SCHEME_NAMES = sorted(config_files("compression"))
CLUSTER_NAMES = sorted(config_files("cluster"))
assert set(config_files("model")) == set(MODELS) | set(SOURCES) and set(SCHEME_NAMES) == set(SCHEMES)

GOOD_BANDWIDTHS = ["100mbit", "1gbit", "10Gbit", "500kbit", "64bit", "1tbit", "1kibit", "2mibit/s",
                   "1.25GB/s", "125MB/s", "10kB/s", "1MiB/s", "1GiB/s", "1e9", "1.5 gbit"]
BAD_BANDWIDTHS = ["fast", "", " ", "10gbps", "100mbps", "100Mb/s", "1mb/s", "bps", "0mbit", "-1gbit",
                  "1e400gbit", "1e308gbit", "nan", "inf", "gbit", "1.2.3mbit", "100 mbit mbit", "١٠٠mbit"]
GOOD_LATENCIES = ["5us", "0.5ms", "100ns", "2s", "1.5 ms", "0", "5µs", "5μs", "3usec", "1e-3", "1e-400s"]
BAD_LATENCIES = ["soon", "", "-1ms", "5 parsecs", "1e400s", "nan", "inf", "ms", "0.5mss", "5 u s", "--1ms"]


@contextlib.contextmanager
def within(seconds: float):
    """A hang becomes a TimeoutError (which no property allows) instead of a stuck test run."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module", autouse=True)
def scratch_cwd(tmp_path_factory):
    """A fallback results_dir ('results', relative) must never land in the checkout."""
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(here)


def one_line(message: str) -> bool:
    return bool(message.strip()) and len(message.splitlines()) == 1 and "Traceback" not in message


def assert_valid(plan: RunPlan, results_dir: str | None = None) -> None:
    """What every RunPlan make_plan returns must satisfy, whatever it was given."""
    assert isinstance(plan, RunPlan)
    for name, low in (("nodes", 1), ("steps", 1), ("warmup", 1), ("batch_size", 1), ("image_size", 1),
                      ("seed", 0), ("workers_per_node", 1)):
        value = getattr(plan, name)
        assert type(value) is int and value >= low, (name, value)
    assert plan.threads_per_worker is None or (type(plan.threads_per_worker) is int and plan.threads_per_worker >= 1)
    for name in ("collective_timeout_s", "bucket_cap_mb", "lr", "cpus_per_worker"):
        value = getattr(plan, name)
        if value is None and name == "cpus_per_worker":
            continue
        assert type(value) is float and math.isfinite(value) and value > 0, (name, value)
    assert type(plan.momentum) is float and 0 <= plan.momentum < 1
    # the model, its variant and the minimum input size
    assert plan.model in MODELS
    num_classes = plan.num_classes  # the model's output width, which a given num_classes sets
    assert plan.model_kwargs.get("num_classes", num_classes) == num_classes
    assert type(num_classes) is int and num_classes >= 1, num_classes
    variant = {k: v for k, v in plan.model_kwargs.items() if k != "num_classes"}
    assert plan.image_size >= min_image_size(plan.model, **variant)
    # compression: a known scheme with exactly its parameters, each one valid
    assert plan.compression in SCHEMES
    scheme = SCHEMES[plan.compression]
    assert set(plan.compression_params) == set(scheme.params)
    for key, param in scheme.params.items():
        assert param.check(plan.compression_params[key]), (key, plan.compression_params[key])
    if scheme.single_bucket:
        assert plan.bucket_cap_mb == SINGLE_BUCKET_MB
    assert scheme.warmup_problem(plan.warmup, plan.compression_params) is None
    # the cluster and its links
    assert plan.cluster_kind in CLUSTER_NAMES
    network = (plan.bandwidth_bits_per_s, plan.latency_s, plan.loss_percent)
    if plan.cluster_kind != "emulated":
        assert network == (None, None, None)
    for value in network:
        assert value is None or (type(value) is float and math.isfinite(value)), network
    assert plan.bandwidth_bits_per_s is None or plan.bandwidth_bits_per_s > 0
    assert plan.latency_s is None or plan.latency_s >= 0
    assert plan.loss_percent is None or 0 <= plan.loss_percent <= 100
    # where results go; and the record's identity is computable
    assert Path(plan.results_dir).is_absolute()
    if results_dir is not None:
        assert plan.results_dir == str(Path(results_dir).resolve())
    assert re.fullmatch(r"[0-9a-f]{16}", plan.config_hash())


def assert_untouched(results_dir: str) -> None:
    """Validation may create the folder and prove it writable; it never leaves anything in it."""
    assert not (Path(results_dir) / "runs.jsonl").exists()
    assert not Path(results_dir).exists() or list(Path(results_dir).iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 1. Link specs: parse_bandwidth / parse_latency on anything
# ---------------------------------------------------------------------------------------------

any_text = st.text(st.characters(codec="utf-8"), max_size=24)
spec_text = st.one_of(
    st.sampled_from(GOOD_BANDWIDTHS + BAD_BANDWIDTHS + GOOD_LATENCIES + BAD_LATENCIES),
    any_text,
    # a number, then a unit-ish suffix: the region where parsers go wrong
    st.builds(lambda number, space, unit: f"{number}{space}{unit}",
              st.one_of(st.integers(-10**30, 10**30), st.floats(), st.sampled_from(["1.", ".5", "1e5", "+2", "-0"])),
              st.sampled_from(["", " ", "\t"]),
              st.one_of(st.sampled_from(["bit", "kbit", "mbit", "Gbit", "gibit", "mbit/s", "B/s", "kB/s", "MB/s", "GiB/s",
                                         "mb/s", "gbps", "Kbps", "s", "ms", "us", "µs", "ns", "sec", "msecs", "m", "x"]),
                        st.text(st.characters(codec="ascii"), max_size=6))),
)
spec_value = st.one_of(spec_text, st.integers(), st.floats(), st.booleans(), st.none(),
                       st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


@settings(max_examples=1500, deadline=None)
@given(spec_value)
@example("100mbit")
@example("1gbit")
@example("1.25GB/s")
@example("garbage")
@example("1e308gbit")
@example(10**400)  # regression: OverflowError (int too large for a float), not NetworkSpecError
def test_bandwidth_is_a_finite_positive_rate_or_one_line(text):
    try:
        bits = parse_bandwidth(text)
    except NetworkSpecError as exc:
        assert one_line(str(exc)) and str(exc).startswith("network.bandwidth: ")
    else:
        assert type(bits) is float and math.isfinite(bits) and bits > 0


@settings(max_examples=1500, deadline=None)
@given(spec_value)
@example("5us")
@example("0.5ms")
@example("garbage")
@example("1e-400s")
@example("-0")
@example(10**400)  # regression: OverflowError, as for the bandwidth
def test_latency_is_a_finite_nonnegative_time_or_one_line(text):
    try:
        seconds = parse_latency(text)
    except NetworkSpecError as exc:
        assert one_line(str(exc)) and str(exc).startswith("network.latency: ")
    else:
        assert type(seconds) is float and math.isfinite(seconds) and seconds >= 0


@pytest.mark.parametrize("text, bits", [("100mbit", 1e8), ("1gbit", 1e9), ("1.25GB/s", 1e10), ("10kB/s", 8e4),
                                        ("1MiB/s", 8 * 2**20), ("64bit", 64.0), ("1e9", 1e9)])
def test_good_bandwidths(text, bits):
    assert parse_bandwidth(text) == pytest.approx(bits)


@pytest.mark.parametrize("text, seconds", [("5us", 5e-6), ("0.5ms", 5e-4), ("100ns", 1e-7), ("2s", 2.0),
                                           ("1.5 ms", 1.5e-3), ("5µs", 5e-6), ("0", 0.0)])
def test_good_latencies(text, seconds):
    assert parse_latency(text) == pytest.approx(seconds)


# ---------------------------------------------------------------------------------------------
# 2. make_plan on the composed config with values replaced by anything Hydra could hand over
# ---------------------------------------------------------------------------------------------

BASE = compose([])  # composed once: the property below edits copies of it

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(-3, 300),
    st.floats(), st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, 1e-300, 1e300, math.inf, -math.inf, math.nan]),
    st.text(max_size=10), st.sampled_from(["", "1", "3", "abc", "null", "1e3", "0x10", "inf"]),
)
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                        max_leaves=4)


def mostly(valid: st.SearchStrategy, *bad: st.SearchStrategy) -> st.SearchStrategy:
    """A valid value about 3 times in 4 (else plans would almost never pass), else a bad one."""
    return st.one_of(valid, valid, valid, st.one_of(*bad, anything))


ints = st.one_of(st.integers(-5, 100), st.integers(), st.floats(-5, 100), st.sampled_from([2.0, 2.5, True, False]))
floats = st.one_of(st.floats(), st.integers(-2, 100), st.sampled_from([0, -0.0, math.inf, math.nan, 10**400]))
FIELDS: dict[tuple[str, ...], st.SearchStrategy] = {
    ("nodes",): mostly(st.integers(1, 64), ints), ("steps",): mostly(st.integers(1, 100), ints),
    ("warmup",): mostly(st.integers(0, 10), ints), ("batch_size",): mostly(st.integers(1, 64), ints),
    ("image_size",): mostly(st.integers(1, 512), ints), ("seed",): mostly(st.integers(0, 2**63), ints),
    ("collective_timeout_s",): mostly(st.floats(1e-3, 1e4), floats),
    ("model", "name"): mostly(st.sampled_from(MODEL_NAMES), st.sampled_from(MODEL_NAMES).map(str.upper), st.text(max_size=12)),
    ("model", "num_classes"): mostly(st.integers(1, 10**6), ints),
    ("compression", "name"): mostly(st.sampled_from(SCHEME_NAMES), st.text(max_size=10)),
    ("cluster", "kind"): mostly(st.sampled_from(CLUSTER_NAMES), st.text(max_size=8)),
    ("cluster", "workers_per_node"): mostly(st.integers(1, 8), ints),
    ("cluster", "cpus_per_worker"): mostly(st.none() | st.floats(0.01, 64), floats),
    ("cluster", "threads_per_worker"): mostly(st.none() | st.integers(1, 64), ints),
    ("network", "bandwidth"): mostly(st.sampled_from(GOOD_BANDWIDTHS), st.sampled_from(BAD_BANDWIDTHS), floats),
    ("network", "latency"): mostly(st.sampled_from(GOOD_LATENCIES), st.sampled_from(BAD_LATENCIES), floats),
    ("network", "loss"): mostly(st.floats(0, 100), st.floats(), st.floats(-1, 101)),
    ("ddp", "bucket_cap_mb"): mostly(st.floats(1e-3, 1e4), floats), ("optimizer", "lr"): mostly(st.floats(1e-6, 10), floats),
    ("optimizer", "momentum"): mostly(st.floats(0, 0.999), st.floats(-0.5, 1.5)),
    # results_dir is only ever given a non-path here: a string would be a folder made on disk
    ("results_dir",): st.one_of(st.integers(1), st.just(True), st.floats(0.5, 10), st.lists(st.integers(), min_size=1, max_size=2),
                                st.dictionaries(st.text(max_size=2), st.integers(), min_size=1, max_size=2)),
}
PARAMS = {"ratio": st.floats(1e-6, 1), "rank": st.integers(1, 8), "start_iter": st.integers(2, 4),
          "min_compression_rate": st.floats(0.1, 10)}


@st.composite
def edits(draw) -> dict[tuple[str, ...], Any]:
    keys = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=4))
    out = {key: draw(FIELDS[key]) for key in keys}
    if any(k[0] == "network" for k in out) and draw(st.booleans()):
        out[("cluster", "kind")] = "emulated"  # links are shaped only there
    if draw(st.booleans()):  # compression parameters: mostly a scheme that has some, and mostly its own
        scheme = out.setdefault(("compression", "name"), draw(mostly(st.sampled_from([n for n, sc in SCHEMES.items() if sc.params]))))
        own = sorted(SCHEMES[scheme].params if isinstance(scheme, str) and scheme in SCHEMES else {}) or sorted(PARAMS)
        names = draw(st.lists(mostly(st.sampled_from(own), st.sampled_from(sorted(PARAMS)), st.text(max_size=6)), max_size=3))
        out.update({("compression", k): draw(mostly(PARAMS[k], floats) if k in PARAMS else anything) for k in names
                    if isinstance(k, str) and k != "name"})
    return out


def config_with(results_dir: str, changes: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE)
    cfg["results_dir"] = results_dir
    model = changes.get(("model", "name"))
    if isinstance(model, str) and model in MODELS:
        cfg["model"] = {"name": model, **model_conf(model)}  # a real model gets its conf's variant
    scheme = changes.get(("compression", "name"))
    if isinstance(scheme, str) and scheme in SCHEMES:
        cfg["compression"] = {"name": scheme, **SCHEMES[scheme].defaults()}
    for path, value in changes.items():
        node = cfg
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    return cfg


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
@example({("nodes",): 0})
@example({("nodes",): True})
@example({("nodes",): 2.5})
@example({("steps",): -1})
@example({("model", "name"): "alexnet", ("image_size",): 8})
@example({("compression", "name"): "topk", ("compression", "ratio"): 2})
@example({("compression", "name"): "powersgd", ("compression", "rank"): 0})
@example({("compression", "name"): "powersgd", ("compression", "start_iter"): 5})
@example({("cluster", "kind"): "emulated", ("network", "bandwidth"): "fast"})
@example({("network", "bandwidth"): "100mbit"})
# regressions: each of these was accepted into a plan that later failed with a traceback or a wrong record
@example({("collective_timeout_s",): math.inf})  # OverflowError in runner.make_trainer
@example({("collective_timeout_s",): 10**400})  # OverflowError in make_plan itself (float())
@example({("ddp", "bucket_cap_mb"): math.inf})
@example({("optimizer", "lr"): math.inf})
@example({("cluster", "cpus_per_worker"): math.inf})
@example({("results_dir",): [1]})  # TypeError in writable_dir
@example({("cluster", "kind"): "emulated", ("network", "bandwidth"): 10**400})  # OverflowError in netmodel._split
@example({("model", "num_classes"): -1})  # ValueError on the workers
@example({("model", "num_classes"): "abc"})
@example({("cluster", "kind"): "cloud"})  # ran as local, recorded as "cloud"
@example({("cluster", "kind"): [1]})
def test_make_plan_gives_a_valid_plan_or_one_plan_error(changes):
    with tempfile.TemporaryDirectory() as tmp:
        results_dir = str(Path(tmp) / "results")
        cfg = config_with(results_dir, changes)
        try:
            with within(HANG_S):
                plan = make_plan(cfg)
        except PlanError as exc:
            assert one_line(str(exc)), str(exc)
            event("PlanError")
        else:
            assert_valid(plan, results_dir)
            event("plan")
        assert_untouched(results_dir)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MODEL_NAMES), st.one_of(st.integers(-3, 128), st.integers()))
@example("alexnet", 62)
@example("alexnet", 63)
@example("alexnet", 8)
@example("squeezenet", 20)
def test_image_size_too_small_names_the_minimum(model, image_size):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_with(tmp, {("model", "name"): model, ("image_size",): image_size})
        minimum = MODELS[model].min_image_size
        try:
            plan = make_plan(cfg)
        except PlanError as exc:
            message = str(exc)
            assert one_line(message)
            if image_size < 1:
                assert message == f"image_size must be an integer >= 1, got {image_size}"
            else:
                assert image_size < minimum
                assert message == f"image_size={image_size} is too small for {model}: its minimum is {minimum}"
        else:
            assert image_size >= minimum and (plan.model, plan.image_size) == (model, image_size)
            assert_valid(plan, tmp)
        assert_untouched(tmp)


# ---------------------------------------------------------------------------------------------
# 3. The CLI's own path: override strings -> precheck -> Hydra -> make_plan (cli.plan_from)
# ---------------------------------------------------------------------------------------------

override_text = st.one_of(
    st.integers(-10**6, 10**20).map(str),
    st.floats().map(repr),
    st.sampled_from(["null", "true", "false", "inf", "-inf", "nan", "1e400", "-0", "0", "1.5", "0x10", "1_000",
                     "'3'", "[1]", "{a: 1}", "[]", "${nodes}", "${oops}", "${oc.env:HOME}", "''", "a b", "choice(1,2)",
                     "1,2", "[1", "\\", "$", "=", "#", "%", "~"]),
    st.sampled_from(GOOD_BANDWIDTHS + BAD_BANDWIDTHS + GOOD_LATENCIES + BAD_LATENCIES),
    st.text(st.characters(codec="utf-8"), max_size=10),
)


def mostly_text(valid: st.SearchStrategy) -> st.SearchStrategy:
    """An override value that is valid about 2 times in 3, else any text."""
    return st.one_of(valid, valid, override_text)


def ints_text(low: int, high: int) -> st.SearchStrategy:
    return mostly_text(st.integers(low, high).map(str))


def floats_text(low: float, high: float) -> st.SearchStrategy:
    return mostly_text(st.floats(low, high).map(repr))


OVERRIDE_KEYS = {
    "nodes": ints_text(1, 64), "steps": ints_text(1, 100), "warmup": ints_text(0, 10), "batch_size": ints_text(1, 64),
    "image_size": ints_text(1, 512), "seed": ints_text(0, 2**31),
    "model": mostly_text(st.sampled_from(MODEL_NAMES)), "model.name": mostly_text(st.sampled_from(MODEL_NAMES)),
    "model.num_classes": ints_text(1, 10**6),
    "compression": mostly_text(st.sampled_from(SCHEME_NAMES)),
    "compression.ratio": floats_text(1e-6, 1),  # in topk's config only: elsewhere Hydra refuses it
    "++compression.ratio": floats_text(1e-6, 1), "++compression.rank": ints_text(1, 8),
    "++compression.start_iter": ints_text(2, 3), "++compression.min_compression_rate": floats_text(0.1, 10),
    "cluster": mostly_text(st.sampled_from(CLUSTER_NAMES)), "cluster.kind": mostly_text(st.sampled_from(CLUSTER_NAMES)),
    "network.bandwidth": st.one_of(st.sampled_from(GOOD_BANDWIDTHS), st.sampled_from(BAD_BANDWIDTHS), override_text),
    "network.latency": st.one_of(st.sampled_from(GOOD_LATENCIES), st.sampled_from(BAD_LATENCIES), override_text),
    "network.loss": floats_text(0, 100), "collective_timeout_s": floats_text(1e-3, 1e4),
    "ddp.bucket_cap_mb": floats_text(1e-3, 1e4),
}


@st.composite
def override_lists(draw) -> list[str]:
    keys = draw(st.lists(st.sampled_from(sorted(OVERRIDE_KEYS)), min_size=1, max_size=3))
    overrides = [f"{key}={draw(OVERRIDE_KEYS[key])}" for key in keys]
    if any(o.startswith("network.") for o in overrides) and draw(st.booleans()):
        overrides.insert(0, "cluster=emulated")  # the links are shaped only there
    if any(o.startswith(("compression.", "++compression.")) for o in overrides) and draw(st.booleans()):
        overrides.insert(0, f"compression={draw(st.sampled_from(['topk', 'powersgd']))}")  # schemes with parameters
    return overrides


def plan_or_exit(overrides: list[str], results_dir: str) -> tuple[RunPlan | None, int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    plan = code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), within(HANG_S):
        try:
            plan = plan_from([*overrides, f"results_dir={results_dir}"])
        except SystemExit as exc:
            code = exc.code
    return plan, code, out.getvalue(), err.getvalue()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(override_lists())
@example(["nodes=0"])
@example(["nodes=abc"])
@example(["steps=-1"])
@example(["model=nope"])
@example(["model=alexnet", "image_size=8"])
@example(["compression=topk", "compression.ratio=2"])
@example(["cluster=emulated", "network.bandwidth=fast"])
@example(["cluster=emulated", "network.latency=0.5ms"])
@example(["nodes=${oops}"])
@example(["nodes=[1"])
@example(["nodes=${nodes}"])
@example(["model=choice(a,b)"])
@example(["collective_timeout_s=inf"])  # regression: accepted, then OverflowError in runner.make_trainer
@example(["ddp.bucket_cap_mb=1" + "0" * 400])  # regression: OverflowError (int too large for a float)
@example(["cluster.kind=cloud"])  # regression: ran as local, recorded as cluster_kind "cloud"
@example(["cluster=emulated", "network.latency=1" + "0" * 400])  # regression: OverflowError in netmodel._split
@example(["model.num_classes=-1"])  # regression: accepted, then ValueError on every worker
def test_plan_from_gives_a_plan_or_one_error_line_and_exit_2(overrides):
    with tempfile.TemporaryDirectory() as tmp:
        results_dir = str(Path(tmp) / "results")
        plan, code, out, err = plan_or_exit(overrides, results_dir)
        if plan is not None:
            assert_valid(plan, results_dir)
            assert (out, err) == ("", "")
            event("plan")
        else:
            assert code == 2, (code, err)
            assert err.startswith(ERROR_PREFIX) and err.endswith("\n") and one_line(err), err
            assert len(err) > len(ERROR_PREFIX) + 1
            event("exit 2")
        assert_untouched(results_dir)


# ---------------------------------------------------------------------------------------------
# 4. The real command line, a few cases (each is a Python process: ~2-4 s), two at a time
# ---------------------------------------------------------------------------------------------

CLI_CASES = {
    "nodes=0": ("nodes=0",),
    "nodes=abc": ("nodes=abc",),
    "steps=-1": ("steps=-1",),
    "model=nope": ("model=nope",),
    "alexnet image_size=8": ("model=alexnet", "image_size=8"),
    "topk ratio=2": ("compression=topk", "compression.ratio=2"),
    "emulated bandwidth=fast": ("cluster=emulated", "network.bandwidth=fast"),
    "torchvision name misspelt": ("model=torchvision", "model.name=resnet_18"),
    "timm name misspelt": ("model=timm", "model.name=ghostnet_10"),
    "factory does not import": ("model=custom", "model._target_=not_a_package.nets.tiny"),
    "factory key without +": ("model=custom", "model._target_=os.path.join", "model.width=3"),
}
CLI_EXPECT = {
    "nodes=0": "nodes must be an integer >= 1, got 0",
    "nodes=abc": "nodes must be an integer >= 1, got 'abc'",
    "steps=-1": "steps must be an integer >= 1, got -1",
    "model=nope": "unknown model 'nope'; known: alexnet,",
    "alexnet image_size=8": "image_size=8 is too small for alexnet: its minimum is 63",
    "topk ratio=2": "compression.ratio must be a number in (0, 1], got 2",
    "emulated bandwidth=fast": "network.bandwidth: cannot read 'fast'",
    "torchvision name misspelt": "torchvision has no model 'resnet_18' (did you mean 'resnet18'?)",
    "timm name misspelt": "timm has no model 'ghostnet_10' (did you mean 'ghostnet_130'?)",
    "factory does not import": "model._target_ 'not_a_package.nets.tiny' does not import: No module named 'not_a_package'",
    "factory key without +": "model.width is not in conf/model/custom.yaml: add a keyword argument of the model as +model.width=",
}
# Malformed overrides: Hydra alone would answer with a traceback (interpolation) or several lines;
# run_hydra checks every cell through cli.plan_from first. A sweep is checked cell by cell.
CLI_MALFORMED = {
    "nodes=${oops}": (("nodes=${oops}",), "Interpolation key 'oops' not found"),
    "nodes=[1": (("nodes=[1",), "no viable alternative at input '[1'"),
    "=3": (("=3",), "cannot read '=3': write key=value"),
    "sweep with a bad cell": (("-m", "nodes=1,0"), "nodes must be an integer >= 1, got 0"),
    "sweep and --cfg": (("-m", "nodes=1,2", "--cfg", "job"), "-m runs a sweep and --cfg/--info/--hydra-help print"),
}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Every CLI case run once, two processes at a time; Ray is made unimportable to prove that
    each error comes before Ray starts (so nothing can hang on a cluster)."""
    fake = tmp_path_factory.mktemp("fake_ray") / "ray"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('Ray was imported before the input was checked')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(REPO)]), "WANDB_MODE": "disabled"}
    env.pop("HYDRA_FULL_ERROR", None)

    def run(item):
        name, args = item
        where = tmp_path_factory.mktemp("cli")
        results = where / "results"
        proc = subprocess.run([sys.executable, "-m", "commbench", *args, f"results_dir={results}"], cwd=where,
                              env=env, capture_output=True, text=True, timeout=60)
        return name, (proc, where)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, {**CLI_CASES, **{k: args for k, (args, _) in CLI_MALFORMED.items()}}.items()))


def check_cli(proc: subprocess.CompletedProcess, where: Path) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith(ERROR_PREFIX) and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert not list(where.rglob("runs.jsonl"))


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_bad_input_is_one_line_exit_2(cli_results, name):
    proc, where = cli_results[name]
    check_cli(proc, where)
    assert proc.stderr.startswith(ERROR_PREFIX + CLI_EXPECT[name]), proc.stderr


@pytest.mark.parametrize("name", list(CLI_MALFORMED))
def test_cli_malformed_override_is_one_line_exit_2(cli_results, name):
    proc, where = cli_results[name]
    check_cli(proc, where)
    assert proc.stderr.startswith(ERROR_PREFIX + CLI_MALFORMED[name][1]), proc.stderr
