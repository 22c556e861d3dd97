"""A dead or silent peer ends a run with an error within the collective timeout; it never hangs."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from datetime import timedelta

from commbench.config import compose
from commbench.plan import make_plan
from commbench.runner import make_trainer
from tests.ddp_harness import free_port


def test_trainer_gets_the_configured_collective_timeout(tmp_path):
    plan = make_plan(compose(["collective_timeout_s=7", f"results_dir={tmp_path}"]))
    trainer = make_trainer(plan, lambda cfg: None, plan.worker_config())
    assert trainer.backend_config.timeout_s == 7 and trainer.backend_config.backend == "gloo"


def _rank(rank: int, port: int, timeout_s: float, silent: bool, queue) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=timeout_s))
    if rank == 1:
        if silent:
            time.sleep(60)  # alive but never joins the collective
        os._exit(0)  # dead: the process is gone
    t0 = time.perf_counter()
    try:
        dist.all_reduce(torch.ones(1024))
        queue.put(("finished", time.perf_counter() - t0))
    except Exception as exc:  # noqa: BLE001 - the point is that *something* is raised
        queue.put((type(exc).__name__, time.perf_counter() - t0))
    queue.close()
    queue.join_thread()  # flushed before the hard exit below
    os._exit(0)


def peer_failure(silent: bool, timeout_s: float = 3.0):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, timeout_s, silent, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        return queue.get(timeout=60)
    finally:
        for p in procs:
            p.kill()
            p.join()


def test_dead_peer_is_an_error_not_a_hang():
    outcome, seconds = peer_failure(silent=False)
    assert outcome != "finished" and seconds < 30


def test_silent_peer_times_out_after_the_collective_timeout():
    outcome, seconds = peer_failure(silent=True, timeout_s=3.0)
    assert outcome != "finished"
    assert 2.5 < seconds < 30  # about the configured 3 s, far from a hang
