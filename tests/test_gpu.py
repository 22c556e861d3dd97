"""The GPU path (use_gpu=true): CUDA-event clocks and the device Ray assigned. Skipped without CUDA;
launch/gpu_check.sh runs these and a one-GPU run."""

from __future__ import annotations

import time

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_cuda_events_time_the_device_work_not_its_launch():
    from commbench.comm.clocks import CudaClock

    device = torch.device("cuda:0")
    clock = CudaClock(device)
    a = torch.randn(4096, 4096, device=device)
    torch.cuda.synchronize(device)
    start = clock.stamp()
    t0 = time.perf_counter()
    for _ in range(20):
        a = a @ a / 64
    launched = time.perf_counter() - t0
    end = clock.stamp()
    [elapsed] = clock.seconds(start, [end])
    assert elapsed > 0 and elapsed >= 0.5 * launched  # the events see the kernels run, not just queue


def test_gpu_device_is_made_current(monkeypatch):
    from commbench.comm.group import gpu_device

    monkeypatch.setenv("LOCAL_RANK", "0")
    device = gpu_device()
    assert device.type == "cuda" and torch.cuda.current_device() == (device.index or 0)


def test_one_gpu_run_adds_up(tmp_path):
    from commbench.config import compose
    from commbench.plan import make_plan
    from commbench.record import build_record
    from tests.ddp_harness import run_workers

    plan = make_plan(compose(["model=squeezenet", "nodes=1", "use_gpu=true", "steps=5", f"results_dir={tmp_path}"]))
    record = build_record(plan, run_workers(plan.worker_config(), 1), {"ray_init_s": 0.0, "fit_s": 0.0, "run_s": 0.0})
    per = record["per_step"]
    for i, step in enumerate(per["step_time_s"]):
        assert per["compute_time_s"][i] + per["codec_time_s"][i] + per["exposed_comm_s"][i] + \
            per["optimizer_time_s"][i] == pytest.approx(step)
    assert record["device"] != "cpu" and min(per["backward_time_s"]) > 0
