"""Models from anywhere: `model=torchvision model.name=...`, `model=timm model.name=...` and
`model=custom model._target_=package.module.factory` (commbench/models/sources.py).

Fast: names resolve against each library's own registry, a misspelt one names the nearest, a factory
that does not import says so, keyword arguments reach the builder, the classes are read from a
factory's output, `models add=` counts on the meta device. On Ray (two runs): torchvision's and timm's
resnet18 in one sweep, and a factory defined in a temporary file outside the package, each at nodes=2
with grad_bytes_per_step exactly 4 x the parameters the library (or the factory itself) builds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from commbench.models import ModelSourceError, build_model, count_params, count_params_meta, get_spec, output_classes
from commbench.plan import PlanError, make_plan
from commbench.config import compose
from commbench.results.store import read_records

REPO = Path(__file__).resolve().parents[1]
SMALL = ["nodes=2", "steps=2", "warmup=1", "batch_size=2", "image_size=32"]
FACTORY = '''
from torch import nn


def tiny(width=8, classes=10):
    """A conv, a pool and a classifier: 3*9*width + width + width*classes + classes parameters."""
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, classes))


def needs(width):
    return tiny(width)


def pair():
    return tiny(), tiny()


class Idle(nn.Module):
    """A head its forward never uses: DDP fails on parameters without a gradient."""

    def __init__(self):
        super().__init__()
        self.body, self.unused = tiny(), nn.Linear(3, 3)

    def forward(self, x):
        return self.body(x)
'''


@pytest.fixture
def factory(tmp_path, monkeypatch):
    """A module of the user's, outside the package, importable through PYTHONPATH (as on every worker)."""
    (tmp_path / "my_nets.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    yield tmp_path
    sys.modules.pop("my_nets", None)


def plan(*overrides: str, results_dir: Path):
    return make_plan(compose([*overrides, f"results_dir={results_dir}"]))


def test_library_models_resolve_by_their_registries(tmp_path):
    p = plan("model=timm", "model.name=ghostnet_130", results_dir=tmp_path)
    assert (p.model, p.model_kwargs, p.num_classes) == ("timm/ghostnet_130", {"num_classes": 1000}, 1000)
    p = plan("model=torchvision", "model.name=efficientnet_b2", "model.num_classes=10", results_dir=tmp_path)
    assert (p.model, p.model_kwargs, p.num_classes) == ("torchvision/efficientnet_b2", {"num_classes": 10}, 10)
    import timm
    from torchvision.models import get_model_weights

    weights = next(iter(get_model_weights("efficientnet_b2")))
    assert count_params_meta("torchvision/efficientnet_b2") == weights.meta["num_params"]  # torchvision's own figure
    with torch.device("meta"):
        assert count_params_meta("timm/ghostnet_130") == count_params(timm.create_model("ghostnet_130"))


def test_keyword_arguments_reach_the_library(tmp_path):
    p = plan("model=timm", "model.name=resnet18", "+model.drop_rate=0.2", results_dir=tmp_path)
    assert p.model_kwargs == {"num_classes": 1000, "drop_rate": 0.2}
    assert build_model(p.model, **p.model_kwargs).drop_rate == 0.2
    with pytest.raises(PlanError, match=r"^torchvision/resnet18 does not build and run at image_size=64: "
                                        r".*unexpected keyword argument 'depth'$"):
        plan("model=torchvision", "model.name=resnet18", "+model.depth=3", results_dir=tmp_path)


def test_misspelt_names_get_the_nearest(tmp_path):
    with pytest.raises(PlanError, match=r"^timm has no model 'ghostnet_10' \(did you mean 'ghostnet_130'\?\)"):
        plan("model=timm", "model.name=ghostnet_10", results_dir=tmp_path)
    with pytest.raises(PlanError, match="^model=timm needs model.name=<a timm model>$"):
        plan("model=timm", results_dir=tmp_path)
    with pytest.raises(ModelSourceError, match=r"^torchvision has no model 'resnet_18' \(did you mean 'resnet18'\?\)"):
        get_spec("torchvision/resnet_18")


def test_a_factory_gets_exactly_its_keys_and_sets_the_classes(factory, tmp_path):
    p = plan("model=custom", "model._target_=my_nets.tiny", "+model.width=6", "+model.classes=7", results_dir=tmp_path)
    assert (p.model, p.model_kwargs, p.num_classes) == ("custom/my_nets.tiny", {"width": 6, "classes": 7}, 7)
    assert count_params_meta(p.model, **p.model_kwargs) == 3 * 9 * 6 + 6 + 6 * 7 + 7
    assert output_classes("custom/my_nets.tiny", 5) == 10  # the factory's own default
    with pytest.raises(PlanError, match=r"^model._target_ 'my_nets.tiny' does not build: "
                                        r".*unexpected keyword argument 'num_classes'$"):
        plan("model=custom", "model._target_=my_nets.tiny", "+model.num_classes=3", results_dir=tmp_path)
    with pytest.raises(PlanError, match=r"does not build and run at image_size=2: .*Kernel size can't be greater"):
        plan("model=custom", "model._target_=my_nets.tiny", "image_size=2", results_dir=tmp_path)
    with pytest.raises(PlanError, match=r"^model._target_ 'my_nets.nothing' does not import: "):
        plan("model=custom", "model._target_=my_nets.nothing", results_dir=tmp_path)


def test_an_id_is_chosen_by_the_run_options_it_came_from(tmp_path):
    """replay models=..., predict and the hints say a model by its id; the run options give it back."""
    from commbench.models.sources import run_options

    for model in ("squeezenet", "timm/ghostnet_100", "torchvision/resnet18"):
        assert plan(*run_options(model), results_dir=tmp_path).model == model
    assert run_options("custom/my_nets.tiny") == ["model=custom", "model._target_=my_nets.tiny"]


def test_what_ddp_cannot_train_is_refused_before_ray(factory, tmp_path):
    with pytest.raises(PlanError, match=r"^custom/my_nets.Idle has 2 parameter\(s\) that get no gradient in "
                                        r"training \(unused.weight, ...\): DDP fails on them$"):
        plan("model=custom", "model._target_=my_nets.Idle", results_dir=tmp_path)
    with pytest.raises(PlanError, match=r"^model._target_ 'my_nets.pair' returned a tuple, not a torch.nn.Module$"):
        plan("model=custom", "model._target_=my_nets.pair", results_dir=tmp_path)
    with pytest.raises(PlanError, match=r"^model._target_ 'my_nets.needs' does not build: "
                                        r"needs\(\) missing 1 required positional argument: 'width'$"):
        plan("model=custom", "model._target_=my_nets.needs", results_dir=tmp_path)
    # Auxiliary heads beside the logits train with them (the worker adds 0.4x their loss): accepted.
    assert plan("model=torchvision", "model.name=googlenet", "model.num_classes=10", "+model.init_weights=false",
                results_dir=tmp_path).num_classes == 10


def test_an_edited_factory_is_a_new_run(factory, tmp_path):
    """resume must not skip a factory whose code changed: its source's digest is in the config_hash."""
    from commbench.models.sources import factory_digest

    before = plan("model=custom", "model._target_=my_nets.tiny", results_dir=tmp_path)
    assert before.model_digest == factory_digest("custom/my_nets.tiny") and len(before.model_digest) == 16
    (factory / "my_nets.py").write_text(FACTORY.replace("nn.ReLU()", "nn.GELU()"))
    sys.modules.pop("my_nets", None)
    after = plan("model=custom", "model._target_=my_nets.tiny", results_dir=tmp_path)
    assert after.model_digest != before.model_digest and after.config_hash() != before.config_hash()
    assert plan("model=squeezenet", results_dir=tmp_path).model_digest is None  # others: hashes as before


def test_models_lists_any_model_on_the_meta_device(factory):
    out = commbench("models", "add=timm/ghostnet_130,custom/my_nets.tiny", "format=json")
    assert out.returncode == 0, out.stderr
    bad = commbench("models", "add=custom/my_nets.needs")
    assert (bad.returncode, bad.stderr) == (2, "commbench: error: model._target_ 'my_nets.needs' does not build: "
                                               "needs() missing 1 required positional argument: 'width'\n")
    rows = {r["model"]: r for r in json.loads(out.stdout)}
    assert {"efficientnet_b0", "ghostnet", "fbnet_c", "espnetv2"} <= set(rows)
    assert rows["custom/my_nets.tiny"]["params"] == 3 * 9 * 8 + 8 + 8 * 10 + 10
    assert rows["timm/ghostnet_130"]["grad_bytes_per_step"] == 4 * count_params_meta("timm/ghostnet_130")
    assert rows["timm/ghostnet_130"]["source"] == "timm" and rows["timm/ghostnet_130"]["min_image_size"] is None


def commbench(*args: str, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "commbench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=400, env=env)


def test_torchvision_and_timm_models_run_on_ray_with_exact_bytes(tmp_path):
    """One sweep, one worker group: the same architecture from each library, counted by each library."""
    import timm
    from torchvision.models import get_model_weights

    out = commbench("-m", "model=torchvision,timm", "model.name=resnet18", *SMALL, f"results_dir={tmp_path}",
                    "logging=none")
    assert out.returncode == 0, out.stderr[-3000:]
    records = {r["model"]: r for r in read_records(tmp_path / "runs.jsonl").records}
    expected = {"torchvision/resnet18": next(iter(get_model_weights("resnet18"))).meta["num_params"],
                "timm/resnet18": count_params(timm.create_model("resnet18"))}
    assert set(records) == set(expected)
    for model, params in expected.items():
        r = records[model]
        assert r["status"] == "ok" and r["nodes"] == 2 and r["params"] == params
        assert r["grad_bytes_per_step"] == 4 * params == r["sent_bytes_per_step"]  # ring at N=2 sends it once


def test_a_factory_outside_the_package_runs_on_ray_with_exact_bytes(factory, tmp_path):
    out = commbench("model=custom", "model._target_=my_nets.tiny", "+model.width=6", "+model.classes=7", *SMALL,
                    f"results_dir={tmp_path}", "logging=none", env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    [r] = read_records(tmp_path / "runs.jsonl").records
    params = count_params(__import__("my_nets").tiny(width=6, classes=7))
    assert (r["status"], r["model"], r["model_kwargs"]) == ("ok", "custom/my_nets.tiny", {"width": 6, "classes": 7})
    assert r["params"] == params and r["grad_bytes_per_step"] == 4 * params


def test_predict_and_compare_take_a_model_id(tmp_path):
    """No run of it yet: DDP's bucket layout of the library's model, its bytes 4 x its parameters."""
    out = commbench("predict", "model=timm/ghostnet_100", "nodes=64", "network.bandwidth=10gbit", "network.latency=5us",
                    "compute_s=0.05", "format=json", f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    predicted = json.loads(out.stdout)
    assert predicted["model"] == "timm/ghostnet_100" and "DDP layout" in predicted["trace_source"]
    assert sum(predicted["buckets"]) == 4 * count_params_meta("timm/ghostnet_100")
    out = commbench("compare", "models=squeezenet,timm/ghostnet_100", f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("at N=64 on 10 Gbit/s, 5 us: squeezenet ") and "timm/ghostnet_100 " in out.stdout
