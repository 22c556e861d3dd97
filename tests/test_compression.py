"""Gradient compression: the bytes recorded are the bytes put into collectives, equal to each scheme's
analytic size; the schemes average gradients; compressed runs still train.

Real gloo process groups (tests/ddp_harness.py), commbench's own worker loop.

Each scheme's bytes against its analytic size on SqueezeNet and MobileNet v2 (and SqueezeNet with
1 MB buckets), and against its spec's bytes formula bucket by bucket; the registry imports without torch; the hooks' averages against hand-averaged gradients on 3 ranks (top-k with ratio 1 exactly,
int8 within its quantization step, fp16); bad compression parameters in one line; PowerSGD's warmup past its
start. Marked slow (the default suite keeps to 15 minutes on 2 cores): `compare-compression` on Ray, with its
table, the report's chart and the W&B summary's table.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from commbench.comm.compression import hook_for
from commbench.comm.schemes import SCHEMES, validate
from commbench.comm.hooks import ByteCounter
from commbench.models import build_model
from commbench.plan import PlanError, make_plan
from commbench.config import compose
from commbench.stats import summarize
from tests.ddp_harness import run_workers, spawn, worker_config

CASES = [("squeezenet", 32, 25), ("mobilenet_v2", 32, 25), ("squeezenet", 32, 1)]  # model, image, bucket_cap_mb
TRAIN = ["optimizer.lr=0.002", "optimizer.momentum=0.9"]  # what `compare-compression` trains with


def grads(name: str) -> list[torch.Tensor]:
    return [p for p in build_model(name).parameters() if p.requires_grad]


def powersgd_bytes(name: str, rank: int, rate: float = 2) -> int:
    """PowerSGD (one bucket): each matrix n x m (a tensor viewed as shape[0] x rest) worth compressing,
    (n + m) r' rate < n m with r' = min(n, m, rank), sends P (n r') and Q (m r'); the rest goes as is."""
    floats = 0
    for p in grads(name):
        n = p.shape[0]
        m = p.numel() // n
        r = min(n, m, rank)
        floats += (n + m) * r if (n + m) * r * rate < n * m else p.numel()
    return 4 * floats


def analytic(name: str, scheme: str, buckets: list[int]) -> int:
    """Bytes per step each scheme hands to collectives, from the fp32 bucket sizes (elements)."""
    numel = sum(buckets)
    return {"fp16": 2 * numel, "bf16": 2 * numel,
            "int8": sum(n + 4 for n in buckets),  # int8 values + one fp32 scale per bucket
            "topk": sum(8 * math.ceil(0.01 * n) for n in buckets),  # fp32 values + int32 indices
            "powersgd": powersgd_bytes(name, 2)}[scheme]


def run(name: str, image: int, scheme: str, tmp_path, steps: int = 2, extra: tuple = (), cap_mb: float = 25) -> list[dict]:
    cfg = worker_config([f"model={name}", "nodes=2", f"compression={scheme}", f"steps={steps}", "warmup=2",
                         "batch_size=4", f"image_size={image}", f"ddp.bucket_cap_mb={cap_mb}", *extra], str(tmp_path))
    return sorted(run_workers(cfg, 2)["ranks"], key=lambda r: r["rank"])


@pytest.mark.parametrize("scheme", ["fp16", "bf16", "int8", "topk", "powersgd"])
@pytest.mark.parametrize("name, image, cap_mb", CASES)
def test_recorded_bytes_are_the_schemes_analytic_size(name, image, cap_mb, scheme, tmp_path):
    """Several buckets (cap 1 MB) too: DDP rebuilds its buckets after the first step, and per-bucket
    state (top-k's error feedback) must follow."""
    ranks = run(name, image, scheme, tmp_path, cap_mb=cap_mb)
    fp32_numel = sum(p.numel() for p in grads(name))
    buckets = [b["numel"] for b in ranks[0]["buckets"]]
    assert sum(buckets) == fp32_numel
    expected = analytic(name, scheme, buckets)
    for rank in ranks:
        assert [s["payload"] for s in rank["steps"]] == [expected, expected]
    summary = summarize(ranks, 2, batch_size=4)
    assert summary["grad_bytes_per_step"] == expected
    if scheme in ("fp16", "bf16"):
        assert expected * 2 == 4 * fp32_numel  # exactly half of the fp32 payload
    if scheme == "powersgd":
        assert len(buckets) == 1 and summary["collectives_per_step"] == 3  # uncompressed, P, Q
    elif cap_mb == 1:
        assert len(buckets) > 3
    gathered = scheme in ("int8", "topk")
    # Ring all-reduce sends 2(N-1)/N x payload per rank, ring all-gather (N-1) x payload: at N=2, both 1x.
    assert summary["sent_bytes_per_step"] == expected
    assert {s["gather_payload"] for s in ranks[0]["steps"]} == {expected if gathered else 0}


@pytest.mark.parametrize("scheme", [name for name, spec in SCHEMES.items() if spec.bucket_bytes is not None])
def test_bytes_formula_is_what_the_hooks_count(scheme, tmp_path):
    """A scheme's spec prices a bucket of n fp32 elements (bucket_bytes): exactly what its real hook
    handed to collectives, bucket by bucket and per step (1 MB buckets: several, rebuilt after step 1)."""
    spec = SCHEMES[scheme]
    params = make_plan(compose([f"compression={scheme}", f"results_dir={tmp_path}"])).compression_params
    ranks = run("squeezenet", 32, scheme, tmp_path, cap_mb=1)
    buckets = ranks[0]["buckets"]
    assert len(buckets) > 3
    assert [b["payload_bytes"] for b in buckets] == [spec.bucket_bytes(b["numel"], params) for b in buckets]
    expected = spec.payload_bytes([b["numel"] for b in buckets], params)
    for rank in ranks:
        assert [s["payload"] for s in rank["steps"]] == [expected, expected]


def test_the_registry_imports_without_torch():
    """The plan checks a scheme before Ray starts: the registry and every scheme module import no torch
    (a scheme's hook imports it when a worker builds it)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, pkgutil, importlib, commbench.plan, commbench.comm.schemes as s\n"
            "[importlib.import_module(f'{s.__name__}.{m.name}') for m in pkgutil.iter_modules(s.__path__)]\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
            "print(','.join(s.SCHEMES))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    listed = out.stdout.strip().split(",")
    assert listed[0] == "none" and listed == sorted(listed, key=lambda n: SCHEMES[n].order)  # the listing order


def test_each_scheme_is_its_module_and_its_conf_file():
    """A scheme's conf file names it and sets exactly its declared parameters (their only defaults), and
    nothing else in the package names a scheme: conf/compression/ and comm/schemes/ hold the same ones."""
    from commbench.comm.schemes import SCHEMES
    from commbench.config import config_files, compose

    assert set(config_files("compression")) == set(SCHEMES)
    for name, scheme in SCHEMES.items():
        assert set(scheme.defaults()) == set(scheme.params), name
        assert compose([f"compression={name}"])["compression"] == {"name": name, **scheme.defaults()}
        assert scheme.validate({}) == scheme.defaults()


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_compressed_runs_still_train(scheme, tmp_path):
    """A fixed batch per rank: the optimum is zero loss; every scheme brings the loss down."""
    [rank0, _] = run("squeezenet", 32, scheme, tmp_path, steps=10, extra=TRAIN)
    assert rank0["loss_last"] < 0.75 * rank0["loss_first"], (rank0["loss_first"], rank0["loss_last"])


def _scheme_average_error(scheme: str, params: dict) -> tuple[float, float]:
    """Per rank different data; (largest |hook's gradient - true mean|, largest |gradient|)."""
    torch.manual_seed(0)
    rank, world = dist.get_rank(), dist.get_world_size()
    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = torch.randn(world, 5, 32)
    local = []
    for r in range(world):
        model.zero_grad()
        model(x[r]).sum().backward()
        local.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    mean = sum(local) / world
    model.zero_grad()
    ddp = DDP(model)
    counter = ByteCounter(world)
    ddp.register_comm_hook(*hook_for(scheme, validate(scheme, params), counter))
    counter.start_step()
    ddp(x[rank]).sum().backward()
    got = torch.cat([p.grad.flatten() for p in model.parameters()])
    return float((got - mean).abs().max()), float(torch.stack(local).abs().max())


@pytest.mark.parametrize("scheme, params, tolerance", [
    ("topk", {"ratio": 1.0}, 1e-6),  # every entry sent: the exact mean
    ("int8", {}, 1 / 127),  # off by at most half a quantization step per rank
    ("fp16", {}, 1e-3),
])
def test_schemes_average_gradients(scheme, params, tolerance):
    error, largest = spawn(_scheme_average_error, 3, scheme, params)
    assert error <= tolerance * largest, (error, largest)


@pytest.mark.parametrize("override, message", [
    ("compression.ratio=0", "compression.ratio must be a number in (0, 1], got 0"),
    ("compression.rank=0", "compression.rank must be an integer >= 1, got 0"),
    ("+compression.rank=2", "compression int8 has no parameter 'rank'"),
])
def test_bad_compression_parameters_are_one_line(override, message, tmp_path):
    scheme = {"compression.ratio=0": "topk", "compression.rank=0": "powersgd"}.get(override, "int8")
    with pytest.raises(PlanError) as err:
        make_plan(compose([f"compression={scheme}", override, f"results_dir={tmp_path}"]))
    assert str(err.value) == message


def test_powersgd_needs_warmup_past_its_start(tmp_path):
    with pytest.raises(PlanError) as err:
        make_plan(compose(["compression=powersgd", "compression.start_iter=5", "warmup=3", f"results_dir={tmp_path}"]))
    assert "warmup=3 would time uncompressed steps; set warmup >= compression.start_iter" in str(err.value)
    plan = make_plan(compose(["compression=powersgd", f"results_dir={tmp_path}"]))
    assert plan.compression_params == {"rank": 2, "start_iter": 2, "min_compression_rate": 2}
    assert plan.identity()["compression_params"] == plan.compression_params  # in the hash


@pytest.mark.slow  # the default suite keeps to 15 min on 2 cores
def test_compare_compression_on_ray(tmp_path):
    """`commbench compare-compression`: a recorded run per scheme, the side-by-side table, the report's
    compression chart and the W&B summary's compression table."""
    import subprocess
    import sys
    from pathlib import Path

    from commbench.results.store import read_records
    from tests.wandb_files import runs

    out = subprocess.run([sys.executable, "-m", "commbench", "compare-compression", "model=squeezenet1_1", "nodes=2",
                          "schemes=none,fp16,topk", "steps=3", "warmup=2", "batch_size=4", "image_size=32",
                          f"results_dir={tmp_path}"], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    records = {r["compression"]: r for r in read_records(tmp_path / "runs.jsonl").records}
    assert set(records) == {"none", "fp16", "topk"}
    fp32 = 4 * 1_235_496
    assert records["fp16"]["grad_bytes_per_step"] * 2 == fp32 == records["none"]["grad_bytes_per_step"]
    assert records["topk"]["compression_params"] == {"ratio": 0.01}
    assert records["topk"]["compression_ratio"] == pytest.approx(fp32 / records["topk"]["grad_bytes_per_step"])
    assert "[3/3] squeezenet1_1 nodes=2 compression=topk:" in out.stdout
    assert "topk ratio=0.01" in out.stdout and "2.0x" in out.stdout  # the table
    assert (tmp_path / "report" / "compression.png").exists()
    assert "## Compression" in (tmp_path / "report" / "summary.md").read_text()
    [summary] = [r for r in runs(tmp_path) if r["job_type"] == "sweep-summary"]
    assert summary["group"] == "compare-squeezenet1_1-n2"
    table = summary["tables"]["compression"]
    by_scheme = {row[2]: dict(zip(table["columns"], row)) for row in table["data"]}
    assert by_scheme["fp16"]["grad_bytes_per_step"] == fp32 // 2 and by_scheme["none"]["ratio"] == 1.0
