"""Run commbench's worker train loop in N real gloo processes on loopback, without Ray.

The same `commbench.worker.train_loop` that Ray Train calls, with the process group set up the way
Ray's TorchConfig sets it up (env:// on 127.0.0.1), so byte counts are tested quickly and exactly.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
from datetime import timedelta
from typing import Any, Callable

from commbench.config import compose
from commbench.plan import make_plan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_config(overrides: list[str], results_dir: str) -> dict[str, Any]:
    return make_plan(compose([*overrides, f"results_dir={results_dir}"])).worker_config()


def _entry(fn: Callable, rank: int, world: int, port: int, args: tuple, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_WORLD_SIZE=str(world))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    out = fn(*args)
    if rank == 0:
        queue.put(out)
        queue.close()
        queue.join_thread()  # the result is through the pipe before this process goes
    dist.barrier()  # nobody tears gloo down while a peer still talks to it
    dist.destroy_process_group()
    # Skip interpreter finalization: gloo/DDP threads torn down by Python's exit can abort
    # ("terminate called without an active exception") after all the work is done.
    os._exit(0)


def run_workers(cfg: dict[str, Any], world: int, timeout_s: float = 300) -> dict[str, Any]:
    """commbench's own train loop on `world` ranks; rank 0's gathered figures."""
    from commbench.worker import train_loop

    return spawn(train_loop, world, cfg, timeout_s=timeout_s)


def spawn(fn: Callable, world: int, *args: Any, timeout_s: float = 300) -> Any:
    """Call fn(*args) on `world` gloo ranks (a picklable, module-level fn); rank 0's return value."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(fn, r, world, port, args, queue)) for r in range(world)]
    for p in procs:
        p.start()
    try:
        result = queue.get(timeout=timeout_s)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    codes = [p.exitcode for p in procs]
    assert codes == [0] * world, f"worker exit codes {codes}"
    return result
