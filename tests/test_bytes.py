"""Byte accounting: the counting hook sees exactly 4 x trainable parameters per step in fp32.

Runs commbench's worker loop on real gloo process groups (2 and 4 ranks on loopback).

Exact byte counts for AlexNet, SqueezeNet and MobileNet v2 at 2 and 4 workers; AlexNet's fully
connected layers carrying most of its bytes; `nodes=1` counting the payload it would exchange and sending
nothing; the counting hook a correct all-reduce; the private DDP method it wraps present in the admitted torch.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from commbench.comm.hooks import ByteCounter, counting_allreduce_hook, timed
from commbench.models import build_model, count_params
from commbench.stats import layer_bytes, ring_sent_bytes, summarize
from tests.ddp_harness import run_workers, spawn, worker_config

CASES = [("alexnet", 64), ("squeezenet", 32), ("mobilenet_v2", 32)]


@pytest.fixture(scope="module")
def params():
    return {name: count_params(build_model(name)) for name, _ in CASES}


def buffer_bytes(name: str) -> int:
    return sum(b.numel() * b.element_size() for b in build_model(name).buffers())


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("name, image", CASES)
def test_payload_is_exactly_four_bytes_per_parameter(name, image, world, params, tmp_path):
    cfg = worker_config([f"model={name}", f"nodes={world}", "steps=2", "warmup=1", "batch_size=2",
                         f"image_size={image}"], str(tmp_path))
    out = run_workers(cfg, world)
    ranks = out["ranks"]
    assert out["world_size"] == world and sorted(r["rank"] for r in ranks) == list(range(world))
    expected = 4 * params[name]
    for rank in ranks:
        assert [s["payload"] for s in rank["steps"]] == [expected, expected]
        assert sum(b["payload_bytes"] for b in rank["buckets"]) == expected
        assert {b["dtype"] for b in rank["buckets"]} == {"float32"}
        assert sum(b["numel"] for b in rank["buckets"]) == params[name]
        # BatchNorm buffers are broadcast every forward, counted apart from the gradients.
        assert {s["buffer_bytes"] for s in rank["steps"]} == {buffer_bytes(name)}

    summary = summarize(ranks, world, batch_size=2)
    assert summary["grad_bytes_per_step"] == expected
    assert summary["sent_bytes_per_step"] == round(2 * (world - 1) * expected / world)
    assert sum(layer_bytes(ranks[0]["buckets"]).values()) == expected


def test_alexnet_fully_connected_layers_carry_most_bytes(tmp_path):
    cfg = worker_config(["model=alexnet", "nodes=2", "steps=1", "warmup=1", "batch_size=2",
                         "image_size=64"], str(tmp_path))
    layers = layer_bytes(run_workers(cfg, 2)["ranks"][0]["buckets"])
    fc = sum(n for layer, n in layers.items() if layer.startswith("classifier."))
    assert fc / sum(layers.values()) > 0.9  # 58.6M of AlexNet's 61.1M parameters are in its FC layers
    assert next(iter(layers)) == "classifier.1"  # the 9216x4096 layer: 151 MB of gradients


def test_single_worker_counts_payload_but_sends_nothing(params, tmp_path):
    cfg = worker_config(["model=squeezenet", "nodes=1", "steps=2", "warmup=1", "batch_size=2",
                         "image_size=32"], str(tmp_path))
    ranks = run_workers(cfg, 1)["ranks"]
    summary = summarize(ranks, 1, batch_size=2)
    assert summary["grad_bytes_per_step"] == 4 * params["squeezenet"]
    assert summary["sent_bytes_per_step"] == 0 == ring_sent_bytes(123, 1)


def _hook_averages_gradients() -> bool:
    """Per rank: different data; after backward every rank holds the mean of the local gradients."""
    torch.manual_seed(0)
    rank, world = dist.get_rank(), dist.get_world_size()
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x = torch.randn(world, 3, 8)  # the same on every rank: rank r trains on x[r]
    local = []
    for r in range(world):
        model.zero_grad()
        model(x[r]).sum().backward()
        local.append([p.grad.clone() for p in model.parameters()])
    mean = [sum(g[i] for g in local) / world for i in range(len(local[0]))]

    model.zero_grad()
    ddp = DDP(model)
    counter = ByteCounter(world)
    ddp.register_comm_hook(counter, timed(counting_allreduce_hook, counter))
    counter.start_step()
    ddp(x[rank]).sum().backward()
    step = counter.end_step()
    params = sum(p.numel() for p in model.parameters())
    ok = all(torch.allclose(p.grad, m, atol=1e-6) for p, m in zip(model.parameters(), mean))
    [bucket] = step.buckets
    stamped = bucket.ready <= bucket.issued <= bucket.final and all(done >= issue for issue, done in step.spans)
    return ok and step.payload_bytes == bucket.payload_bytes == 4 * params and stamped


def test_counting_hook_is_a_correct_all_reduce():
    assert spawn(_hook_averages_gradients, 3) is True


def test_the_wrapped_private_ddp_method_exists_in_the_admitted_torch():
    """BufferBroadcasts wraps DistributedDataParallel._distributed_broadcast_coalesced on one instance;
    pyproject.toml admits only torch releases checked to have it (the buffer test above shows it is
    called in every forward)."""
    import re
    import tomllib
    from pathlib import Path

    from torch.nn.parallel import DistributedDataParallel as DDP

    deps = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    [spec] = [d for d in deps if d.startswith("torch>")]
    low, high = re.fullmatch(r"torch>=([\d.]+),<([\d.]+)", spec).groups()
    version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    assert tuple(map(int, low.split("."))) <= version < tuple(map(int, high.split(".")))
    assert (low, high) == ("2.4", "2.15")  # widen only after checking the method in the new releases
    assert callable(getattr(DDP, "_distributed_broadcast_coalesced", None))
