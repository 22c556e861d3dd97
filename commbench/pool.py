"""Worker groups started once per world size: a sweep's cells with the same N (and placement) run on
one Ray Train worker group, which builds, measures and drops each cell's model in turn; a sweep runs
its cells world size by world size (overrides.nodes_first), so each size starts its workers once.

The driver posts a cell's config to its group's board (a Ray actor); rank 0 posts back progress and,
when the cell is done, every rank's figures, which the driver turns into that cell's record at once.
A worker group that fails takes only the cell in flight with it: that cell is recorded as failed and
the next cell of that size starts a fresh group. Workers wait for the next cell on the board, never in
a collective, so a long wait between cells cannot trip the process group's timeout.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import time
from typing import Any, Callable

from commbench.plan import RunPlan

POLL_S = 0.2  # how often the driver looks at the board: progress and the end of a cell


@functools.cache
def _board_class():
    import asyncio

    import ray

    @ray.remote(num_cpus=0)
    class Board:
        """One worker group's cells, in order (None: stop), the figures rank 0 posts back, the
        starts of each cell (a restarted group starts the cell in flight again) and its progress."""

        def __init__(self) -> None:
            self.cells: list[dict[str, Any] | None] = []
            self.results: dict[int, Any] = {}
            self.finished = 0  # cells whose figures came back (the driver pops them as it reads them)
            self.starts: dict[int, int] = {}
            self.joined: set[int] = set()
            self.status: dict[int, dict[str, Any]] = {}
            self.phases: dict[int, list[str]] = {}  # every phase a cell went through, even the short ones
            self.posted = asyncio.Condition()

        async def post(self, cell: dict[str, Any] | None) -> int:
            async with self.posted:
                self.cells.append(cell)
                self.posted.notify_all()
            return len(self.cells) - 1

        async def take(self, index: int) -> dict[str, Any] | None:
            async with self.posted:
                await self.posted.wait_for(lambda: len(self.cells) > index)
            return self.cells[index]

        async def first_open(self) -> int:
            return self.finished  # cells finish in order: the first without figures

        async def join(self, rank: int) -> None:
            self.joined.add(rank)

        async def start(self, index: int) -> int:
            self.starts[index] = self.starts.get(index, 0) + 1
            return self.starts[index]

        async def report(self, index: int, status: dict[str, Any]) -> None:
            self.status[index] = status
            seen = self.phases.setdefault(index, [])
            if not seen or seen[-1] != status["phase"]:
                seen.append(status["phase"])

        async def finish(self, index: int, figures: Any) -> None:
            self.results[index] = figures
            self.finished = max(self.finished, index + 1)

        async def poll(self, index: int) -> tuple[Any, dict[str, Any], list[str], int, bool]:
            """Rank 0's figures (once), status and phases of a cell, the workers joined, and
            whether the cell started."""
            return (self.results.pop(index, None), self.status.get(index, {}), self.phases.get(index, []),
                    len(self.joined), index in self.starts)

    return Board


def serve(group: dict[str, Any]) -> None:
    """The workers' function (commbench.worker.serve), named here so that the driver hands it to Ray
    without importing torchvision itself."""
    from commbench.worker import serve as serve_cells

    serve_cells(group)


def group_key(plan: RunPlan) -> tuple:
    """What a worker group is started with: cells that agree on it can share one."""
    return (plan.nodes, plan.use_gpu, plan.cpus_per_worker, plan.collective_timeout_s, plan.cluster_kind,
            plan.cluster_address, plan.workers_per_node, plan.max_restarts, plan.results_dir)


class WorkerGroup:
    """A TorchTrainer whose workers serve the cells posted to its board until told to stop."""

    def __init__(self, plan: RunPlan) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from commbench import runner

        self.name = f"commbench-group-n{plan.nodes}-{os.getpid()}-{time.monotonic_ns()}"
        # On the driver's node: its polls (every POLL_S) never cross a measured link.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.board = _board_class().options(name=self.name, scheduling_strategy=here).remote()
        trainer = runner.make_trainer(plan, serve, {"board": self.name},
                                      name=f"n{plan.nodes}-{time.strftime('%Y%m%d-%H%M%S')}")
        self.thread, self.outcome = runner.start_fit(trainer, name=self.name)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def run(self, cell: dict[str, Any], show: Callable[[dict[str, Any], list[str], int], None]) -> Any:
        """Post a cell, show its progress, return rank 0's figures; RunError if the group failed."""
        import ray

        index = ray.get(self.board.post.remote(cell))
        while True:
            dead = not self.alive  # before the poll: figures posted just before the end still count
            figures, status, phases, joined, started = ray.get(self.board.poll.remote(index))
            show(status, phases, joined)
            if figures is not None:
                return figures
            if dead:
                error = self.failure()
                error.started = started  # type: ignore[attr-defined]
                raise error
            time.sleep(POLL_S)

    def failure(self) -> Exception:
        from commbench import runner

        error = self.outcome.get("error")
        if error is not None:
            return runner.run_error(error)
        result = self.outcome.get("result")
        if result is not None and result.error is not None:
            return runner.result_error(result)
        return runner.RunError("the worker group stopped before the cell finished")

    def close(self, wait_s: float = 30) -> None:
        """Tell the workers to stop; wait up to wait_s for Ray Train to release the group."""
        import ray

        if self.alive:
            self.board.post.remote(None)
            self.thread.join(wait_s)
        if wait_s:
            ray.kill(self.board)


class Pool:
    """This driver's live worker group. One at a time: a sweep runs its cells world size by world
    size (overrides.nodes_first), so a group is never needed again once the next size starts, and
    no idle group sits beside a measurement."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.group: WorkerGroup | None = None
        self.session: str | None = None
        self.expected = 0

    def expect(self, plans: list[RunPlan]) -> None:
        """A sweep's plans: the embedded Ray is sized for its largest group from the start, so a
        larger world size later never restarts Ray."""
        from commbench.runner import cpus_of

        self.expected = max((cpus_of(p) for p in plans), default=0)

    def reserve(self, plan: RunPlan) -> int:
        """Logical CPUs the embedded Ray is sized for."""
        from commbench.runner import cpus_of

        return max(self.expected, cpus_of(plan))

    def group_for(self, plan: RunPlan) -> tuple[WorkerGroup, bool]:
        """The live group if it fits this plan, else a new one (True: started for it)."""
        import ray

        session = ray.get_runtime_context().get_node_id()
        if session != self.session:  # Ray was restarted (bigger): the old group went with it
            self.key, self.group, self.session = None, None, session
        key = group_key(plan)
        if self.group is not None and self.group.alive and key == self.key:
            return self.group, False
        self.close(wait_s=30)  # its CPUs (placement) go to the new group
        self.key, self.group = key, WorkerGroup(plan)
        return self.group, True

    def close(self, wait_s: float = 0) -> None:
        """Stop the live group. At the end of a command nothing waits for it (wait_s=0): the records
        are written, and Ray's shutdown at the process's exit ends what is left."""
        import ray

        if self.group is not None and ray.is_initialized():
            self.group.close(wait_s)
        self.key = self.group = None


POOL = Pool()


def link_logs(results_dir: str) -> str:
    """results_dir/ray-logs -> this Ray session's log folder, where the workers' own output goes (the
    terminal gets commbench's lines only); what to tell the user."""
    from pathlib import Path

    import ray

    try:  # private: Ray has no public call for its session's log folder
        logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    except AttributeError:
        return "Ray's logs: in its session folder (/tmp/ray/session_latest/logs on the head)"
    link = Path(results_dir) / "ray-logs"
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(logs, target_is_directory=True)
    except OSError:
        return f"Ray's and the workers' logs: {logs}"
    return f"Ray's and the workers' logs: {link} (-> {logs})"


def run(plan: RunPlan, progress=None) -> dict[str, Any]:
    """Start Ray, run the plan as a cell of its worker group (started for it, or still up from an
    earlier cell of this size), and return the record (not yet written). `progress` (sinks.progress)
    shows each phase."""
    import ray

    from commbench import runner
    from commbench.record import build_record
    from commbench.sinks.progress import Phases

    progress = progress or Phases.silent()
    t0 = time.perf_counter()
    starting = not ray.is_initialized()
    if starting:
        progress.phase("starting Ray")
    # The trainer's import (torch, ~2 s of CPU) overlaps Ray's start, which mostly waits on its processes.
    trainer_import = threading.Thread(target=importlib.import_module, args=("ray.train.torch",), daemon=True)
    trainer_import.start()
    try:
        ray_init_s = runner.start_ray(plan, POOL.reserve(plan))
    finally:
        trainer_import.join()  # an import cut off at exit would print a traceback under the error
    if starting:
        progress.note(link_logs(plan.results_dir))
    t1 = time.perf_counter()
    group, started = POOL.group_for(plan)
    try:
        gathered = group.run(plan.worker_config(), progress.board)
    except runner.RunError as exc:
        if getattr(exc, "started", True) or started:
            raise
        # The group died between cells (after the last one's figures): this cell never started, so
        # it gets a fresh group rather than a failed record.
        group, started = POOL.group_for(plan)
        gathered = group.run(plan.worker_config(), progress.board)
    fit_s = time.perf_counter() - t1
    progress.phase("writing the record")
    record = build_record(plan, gathered, {"ray_init_s": ray_init_s, "fit_s": fit_s,
                                           "run_s": time.perf_counter() - t0})
    record.update(worker_group=group.name, group_started=started)
    return record
