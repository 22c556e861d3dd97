"""Communication without training: the busbw sweep and the comm-only replay on real gloo ranks, and
DDP's bucket layout computed for models not yet run.

DDP's layout computed without running equals the buckets the hook saw in a real AlexNet run, bucket for
bucket; a back-to-back replay of ResNet-50's four buckets sends exactly its fp32 payload."""

from __future__ import annotations

import pytest

from commbench.comm.buckets import ddp_layout
from commbench.comm.busbw import busbw_loop, iterations_for, message_sizes
from commbench.units import parse_bytes
from commbench.comm.replay import replay_loop
from commbench.commands.replay import ITEMSIZE, bucket_run, trace_run
from commbench.overrides import plan_from
from commbench.results.store import records_of
from commbench.models import build_model, count_params
from commbench.results.store import append_record
from tests.ddp_harness import run_workers, spawn, worker_config


@pytest.mark.parametrize("text, value", [("1KiB", 1024), ("256MiB", 256 * 2**20), ("4096", 4096), ("1MB", 10**6),
                                         ("2 GiB", 2 * 2**30)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "lots", "1 parsec", "-4KiB", "2"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError):
        parse_bytes(text)


def test_message_sizes_are_powers_of_two():
    assert message_sizes(1024, 8192) == [1024, 2048, 4096, 8192]
    assert message_sizes(1000, 5000) == [1024, 2048, 4096]
    assert len(message_sizes(1024, 256 * 2**20)) == 19
    with pytest.raises(ValueError):
        message_sizes(4096, 1024)
    assert iterations_for(1024, 20) == 20 and iterations_for(256 * 2**20, 20) == 3


def test_busbw_loop_times_every_size(tmp_path):
    cfg = {**worker_config(["nodes=2"], str(tmp_path)), "sizes": [1024, 65536, 2**20], "iters": 4, "warmup_iters": 1}
    rows = spawn(busbw_loop, 2, cfg)
    assert [r["bytes"] for r in rows] == [1024, 65536, 2**20]
    assert [r["iters"] for r in rows] == [4, 4, 4]
    assert all(r["time_s"] > 0 and len(r["times_s"]) == 4 for r in rows)


def test_ddp_layout_matches_what_the_hook_saw(tmp_path):
    """The layout computed without running equals the buckets of a real DDP run, bucket for bucket."""
    cfg = worker_config(["model=alexnet", "nodes=2", "steps=1", "warmup=1", "batch_size=2", "image_size=64"],
                        str(tmp_path))
    seen = [b["payload_bytes"] for b in run_workers(cfg, 2)["ranks"][0]["buckets"]]
    assert ddp_layout("alexnet")["buckets"] == seen
    assert len(seen) == 3 and sum(seen) == 4 * count_params(build_model("alexnet"))


def test_replay_sends_exactly_the_models_bytes(tmp_path):
    path = tmp_path / "runs.jsonl"
    payloads = ddp_layout("resnet50")["buckets"]  # four buckets
    buckets = [{"index": i, "dtype": "float32", "numel": n // 4, "payload_bytes": n} for i, n in enumerate(payloads)]
    append_record(path, {"model": "resnet50", "model_kwargs": {"num_classes": 1000}, "status": "ok", "nodes": 2,
                         "buckets": buckets[::-1]})
    plan = plan_from(["model=resnet50", "nodes=2", f"results_dir={tmp_path}"])
    replayed = sorted(bucket_run(plan, records_of(tmp_path, "run"))["buckets"], key=lambda b: b["index"])
    assert [b["index"] for b in replayed] == [0, 1, 2, 3]
    job = {"buckets": [{"numel": b["payload_bytes"] // ITEMSIZE[b["dtype"]], "dtype": b["dtype"]} for b in replayed],
           "traces": None}  # back to back
    cfg = {**worker_config(["nodes=2"], str(tmp_path)), "replays": [job], "iters": 3, "warmup_iters": 1}
    [out] = spawn(replay_loop, 2, cfg)["replays"]
    assert out["payloads"] == [4 * count_params(build_model("resnet50"))] == [sum(payloads)]
    assert len(out["iters"]) == 3 and min(i["step_s"] for i in out["iters"]) > 0


def test_replay_needs_a_record(tmp_path, capsys):
    plan = plan_from(["model=alexnet", "nodes=2", f"results_dir={tmp_path}"])
    with pytest.raises(SystemExit):
        bucket_run(plan, records_of(tmp_path, "run"))
    assert "no record of model 'alexnet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        trace_run(plan, records_of(tmp_path, "run"), None)
    assert "no nodes=1 run of alexnet with a trace" in capsys.readouterr().err
