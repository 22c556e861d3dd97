"""Config -> RunPlan: defaults, validation (one line each), and the config hash that resume keys on."""

from __future__ import annotations

import pytest

from commbench.config import compose
from commbench.plan import PlanError, make_plan


def plan(tmp_path, *overrides):
    return make_plan(compose([f"results_dir={tmp_path}", *overrides]))


def test_defaults(tmp_path):
    p = plan(tmp_path)
    assert (p.model, p.nodes, p.compression, p.compression_params, p.cluster_kind) == ("squeezenet", 2, "none", {}, "local")
    assert p.model_kwargs == {"num_classes": 1000}
    assert p.results_dir == str(tmp_path.resolve()) and p.runs_file == tmp_path / "runs.jsonl"


def test_variant_kwargs_reach_the_plan(tmp_path):
    p = plan(tmp_path, "model=mobilenet_v1", "model.alpha=0.5")
    assert p.model_kwargs == {"num_classes": 1000, "alpha": 0.5}


@pytest.mark.parametrize("override, message", [
    ("nodes=0", "nodes must be an integer >= 1, got 0"),
    ("nodes=-3", "nodes must be an integer >= 1, got -3"),
    ("nodes=2.5", "nodes must be an integer >= 1, got 2.5"),
    ("nodes=eight", "nodes must be an integer >= 1, got 'eight'"),
    ("nodes=true", "nodes must be an integer >= 1, got True"),
    ("steps=0", "steps must be an integer >= 1, got 0"),
    ("warmup=-1", "warmup must be an integer >= 1, got -1: DDP rebuilds its gradient buckets"),
    ("warmup=0", "warmup must be an integer >= 1, got 0: DDP rebuilds its gradient buckets after the first step"),
    ("compression=topk warmup=1", "compression=topk needs warmup >= 2, got 1: its error feedback"),
    ("batch_size=0", "batch_size must be an integer >= 1, got 0"),
    ("image_size=0", "image_size must be an integer >= 1, got 0"),
    ("collective_timeout_s=0", "collective_timeout_s must be a number > 0, got 0"),
    ("ddp.bucket_cap_mb=-1", "ddp.bucket_cap_mb must be a number > 0, got -1"),
    ("cluster.workers_per_node=0", "cluster.workers_per_node must be an integer >= 1, got 0"),
    ("nodes=100000", "nodes=100000 is more than this machine can hold: "),
    ("model.name=zfnet", "unknown model 'zfnet' (did you mean 'fbnet_c'?); the zoo: alexnet, squeezenet,"),
    ("model=alexnet image_size=62", "image_size=62 is too small for alexnet: its minimum is 63"),
    ("model=mobilenet_v1 +model.beta=2", "model mobilenet_v1: model 'mobilenet_v1' has no option 'beta'"),
    # Bounded before a model is built to measure its minimum input: alpha=1000 would be gigabytes.
    ("model=mobilenet_v1 model.alpha=1000", "mobilenet_v1 alpha must be a number in (0, 4], got 1000"),
    ("model=densenet_bc model.depth=1000", "densenet_bc depth must be an integer from 10 to 250, got 1000"),
    ("compression.name=magic", "unknown compression 'magic'; known: none, fp16, bf16, powersgd, topk, int8"),
    ("+compression.hook=magic", "compression none has no parameter 'hook'"),
    ("network.bandwidth=100mbit", "network.bandwidth shapes links only with cluster=emulated"),
    ("cluster=emulated network.bandwidth=fast", "network.bandwidth: cannot read 'fast'"),
    ("cluster=emulated network.bandwidth=10gbps", "network.bandwidth: "),
    ("cluster=emulated network.latency=-1ms", "network.latency: "),
    ("cluster=emulated network.loss=150", "network.loss must be a percentage from 0 to 100, got 150"),
])
def test_bad_input_is_one_clear_line(tmp_path, override, message):
    with pytest.raises(PlanError) as err:
        plan(tmp_path, *override.split())
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "runs.jsonl").exists()


def test_unwritable_results_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(PlanError, match="results_dir .* is not writable"):
        make_plan(compose([f"results_dir={blocker}/results"]))


def test_config_hash_identifies_what_is_measured(tmp_path):
    base = plan(tmp_path).config_hash()
    assert plan(tmp_path).config_hash() == base
    # Where results go, and whether to resume, do not change what is measured ...
    assert plan(tmp_path / "elsewhere", "resume=false").config_hash() == base
    # ... every measured setting does.
    others = {plan(tmp_path, o).config_hash() for o in
              ("nodes=4", "model=alexnet", "steps=5", "batch_size=4", "image_size=96", "seed=1",
               "ddp.bucket_cap_mb=1", "cluster.address=10.0.0.1:6379")}
    assert len(others) == 8 and base not in others


@pytest.mark.parametrize("overrides, kind, address", [
    ((), "local", None),
    (("cluster.address=10.0.0.1:6379",), "ray", "10.0.0.1:6379"),  # joined, not embedded: named so
    (("cluster=ray", "cluster.address=10.0.0.1:6379"), "ray", "10.0.0.1:6379"),
    (("cluster=compose",), "compose", "ray-head:6379"),
    (("cluster=slurm", "cluster.address=10.0.0.1:6379"), "slurm", "10.0.0.1:6379"),
    (("cluster=kuberay",), "kuberay", "auto"),
])
def test_a_joined_cluster_is_named_for_how_it_was_started(tmp_path, overrides, kind, address):
    p = plan(tmp_path, *overrides)
    assert (p.cluster_kind, p.cluster_address) == (kind, address)
    assert p.where == " ".join(filter(None, (kind, address)))


@pytest.mark.parametrize("kind", ["ray", "slurm"])
def test_a_joined_kind_without_an_address_is_one_line(tmp_path, kind):
    with pytest.raises(PlanError, match=f"^cluster={kind} joins a running Ray cluster: set cluster.address="):
        plan(tmp_path, f"cluster={kind}")


def test_a_group_node_is_omegaconfs_missing():
    """settings spells OmegaConf's MISSING out (reading the declarations imports no OmegaConf)."""
    from omegaconf import MISSING

    from commbench.settings import CHOSEN

    assert CHOSEN == MISSING
