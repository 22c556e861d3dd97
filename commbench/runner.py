"""Ray: start an embedded instance or join a cluster, run the TorchTrainer, turn its result into a record."""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from commbench.errors import PlanError, interrupt, last_line
from commbench.host import available_cores
from commbench.plan import RunPlan

# Ray Train's controller polls workers every 2 s by default; that poll is pure waiting at the end of
# every run, so poll faster (still far below the cost of one step of any model).
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
# Ray's usage stats, and the spot-instance preemption watcher (one more actor process to start and a
# warning on every run), have nothing to do with a benchmark.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
# Ray Train's Prometheus metrics (callbacks in the controller and every worker): commbench records its own.
os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")


class RunError(RuntimeError):
    """The run started but did not finish; str() is one line naming the cause."""


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def cpus_per_worker(plan: RunPlan) -> float:
    return plan.cpus_per_worker or 1.0


def cpus_of(plan: RunPlan) -> int:
    """Logical CPUs the plan's worker group holds."""
    return math.ceil(plan.nodes * cpus_per_worker(plan))


def start_ray(plan: RunPlan, reserve: int = 0) -> float:
    """Start (or join) Ray sized for the plan, or for `reserve` logical CPUs (a sweep's largest
    worker group); returns the seconds it took."""
    import ray

    t0 = time.perf_counter()
    address = join_address(plan)
    if address:
        join_cluster(ray, plan, address)
    else:
        start_embedded(ray, plan, reserve)
    # ray.init installs a SIGTERM handler that aborts the process; as an interrupt instead, the
    # run unwinds: Ray shuts down at exit and records already written stay as they are.
    signal.signal(signal.SIGTERM, interrupt)
    return time.perf_counter() - t0


def join_cluster(ray, plan: RunPlan, address: str) -> None:
    if not ray.is_initialized():
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, **quiet_logs(ray))
        except (ConnectionError, RuntimeError) as exc:
            raise PlanError(f"cannot join the Ray cluster at {address}: {last_line(exc)}") from None
    if plan.cluster_kind == "emulated":
        alive = wait_for_nodes(ray, plan.nodes)
        if alive < plan.nodes:
            raise RunError(f"only {alive} of the {plan.nodes} emulated nodes joined the Ray cluster")
    check_capacity(plan, ray.nodes(), address)


def start_embedded(ray, plan: RunPlan, reserve: int = 0) -> None:
    needed = max(reserve, cpus_of(plan))
    if ray.is_initialized():
        if ray.cluster_resources().get("CPU", 0) >= needed:
            return
        ray.shutdown()  # a sweep reached more workers than this instance was sized for
    # Workers import commbench from here when it runs from a source checkout. Through the environment
    # the raylet inherits, not a runtime_env: workers with a job's runtime_env are started only when an
    # actor asks, while these match the workers Ray starts ahead with the raylet.
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if _package_root() not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), *paths) if p)
    # Logical CPUs: 8 workers start on 2 cores; the threads per worker keep the cores honest.
    ray.init(
        address="local",  # always a new embedded instance, never some other Ray found on the machine
        num_cpus=max(available_cores(), needed),
        num_gpus=None if plan.use_gpu else 0,
        include_dashboard=False,
        **quiet_logs(ray),
        # Workers' own output (torch's c10d hostname warnings, Ray's worker chatter) stays in Ray's
        # session logs (results_dir/ray-logs links to them); failures reach the driver as errors.
        log_to_driver=False,
    )


def quiet_logs(ray) -> dict[str, Any]:
    """Ray Train's INFO lines and its state-API warnings (ray[train] has no dashboard) drown the table;
    worker errors still reach the driver through the training result."""
    return {"logging_level": "ERROR", "logging_config": ray.LoggingConfig(log_level="ERROR")}


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not after Ray's long connect retries, when nothing listens at the address.
    `auto` (Ray's own word: RAY_ADDRESS, else the `ray start` on this machine) is Ray's to find."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise PlanError(f"cluster.address must be HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise PlanError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def join_address(plan: RunPlan) -> str | None:
    """The Ray cluster to join: cluster.address, or the emulated cluster this driver runs inside."""
    if plan.cluster_kind == "emulated":
        from commbench.cluster.emulated import inside_address

        address = inside_address()
        if address is None:
            raise RunError("cluster=emulated runs its driver inside the head's namespace; "
                           "this process is not there")
        return address
    return plan.cluster_address


def wait_for_nodes(ray, count: int, timeout_s: float = 90) -> int:
    """Worker nodes join a head a few seconds after it starts (the emulated cluster's, a SLURM
    allocation's: launch/slurm/); how many did within the timeout."""
    deadline = time.time() + timeout_s
    while (alive := sum(n["Alive"] for n in ray.nodes())) < count and time.time() < deadline:
        time.sleep(0.5)
    return alive


def check_capacity(plan: RunPlan, nodes: list[dict[str, Any]], address: str | None = None) -> None:
    """One worker per node unless cluster.workers_per_node says otherwise."""
    alive = [n for n in nodes if n.get("Alive")]
    slots = len(alive) * plan.workers_per_node
    if plan.nodes > slots:
        raise PlanError(
            f"nodes={plan.nodes} is more than the cluster at {address or plan.cluster_address} can place: "
            f"{len(alive)} alive node(s) x cluster.workers_per_node={plan.workers_per_node} = {slots}"
        )


def make_trainer(plan: RunPlan, loop: Callable[[dict], Any], config: dict[str, Any], name: str | None = None):
    from ray.train import FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    spread = (plan.cluster_address or plan.cluster_kind == "emulated") and plan.workers_per_node == 1
    return TorchTrainer(
        loop,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if plan.use_gpu else "gloo",
                                 timeout_s=int(math.ceil(plan.collective_timeout_s))),
        scaling_config=ScalingConfig(
            num_workers=plan.nodes,
            use_gpu=plan.use_gpu,
            resources_per_worker={"CPU": cpus_per_worker(plan)},
            placement_strategy="STRICT_SPREAD" if spread else "PACK",
        ),
        run_config=RunConfig(
            name=name or (f"{plan.model.replace('/', '__')}-n{plan.nodes}-{plan.config_hash()}-"  # a folder: no '/'
                          f"{time.strftime('%Y%m%d-%H%M%S')}"),
            storage_path=str(Path(plan.results_dir) / "ray"),
            # A failed worker group restarts (from step 0: timings never mix attempts) up to this often.
            # So does one that fails to start: Ray retries those without limit by default, and a node
            # lost while the workers start (a cut link) would have the run wait for it forever.
            failure_config=FailureConfig(max_failures=plan.max_restarts,
                                         controller_failure_limit=plan.max_restarts),
            logging_config=LoggingConfig(log_level="WARNING"),  # the controller's INFO chatter
        ),
    )


def start_fit(trainer, name: str = "commbench-fit") -> tuple[threading.Thread, dict[str, Any]]:
    """trainer.fit() in a helper thread; its outcome lands in the dict ("result" or "error"). In the
    main thread Ray Train would take over Ctrl-C (abort, then exit with no word said); here Ctrl-C
    and SIGTERM reach commbench as an interrupt, and Ray's shutdown at exit stops the run."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            out["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread, out


def fit_in_thread(trainer) -> Any:
    """trainer.fit() (start_fit), waited for."""
    thread, out = start_fit(trainer)
    while thread.is_alive():
        thread.join(0.2)
    if "error" in out:
        raise out["error"]
    return out["result"]


def fit(plan: RunPlan, loop: Callable[[dict], Any], config: dict[str, Any]) -> Any:
    """Run `loop` once on a fresh worker group of the plan's size (busbw, replay, bench); rank 0's
    return value. A run's cells go through pool.py instead."""
    try:
        result = fit_in_thread(make_trainer(plan, loop, config))
    except Exception as exc:  # noqa: BLE001 - Ray Train's failure, in one line
        raise run_error(exc) from exc
    if result.error is not None:
        raise result_error(result)
    if not result.return_value:
        raise RunError("training returned no figures from rank 0")
    return result.return_value


def result_error(result) -> "RunError":
    """A finished trainer's Result that carries an error, as one line."""
    return RunError(f"training failed: {last_line(result.error)}")


def run_error(exc: BaseException) -> "RunError":
    """A worker group's failure as one line (a bug of commbench's own is not dressed up as one)."""
    from ray.train import TrainingFailedError

    if isinstance(exc, TrainingFailedError):
        return RunError(f"training failed: {failure_reason(exc)}")
    if isinstance(exc, RunError):
        return exc
    raise exc


DIED = {"WorkerHealthCheckFailedError", "ActorDiedError", "RayActorError"}  # Ray's names for a lost worker
CALLBACK_PREFIX = "Got the following error when running the callback: "


def died(err: BaseException) -> bool:
    return bool(DIED & {c.__name__ for c in type(err).__mro__})


def failure_reason(exc: BaseException) -> str:
    """Which ranks failed and why, in one line (Ray's WorkerGroupError maps rank -> exception)."""
    failures = getattr(exc, "worker_failures", None) or {}
    if not failures:
        # Ray's controller saw the dead actor first (ControllerError): it names no rank.
        cause = getattr(exc, "controller_failure", None)
        if cause is not None and died(cause):
            return "a worker process died (killed, crashed or out of memory; Ray's controller named no rank)"
        if type(cause).__name__ == "WorkerGroupStartupTimeoutError":  # Ray's text goes on about autoscaling
            waited = str(cause).split(". ")[0]  # "The worker group startup timed out after 60.0 seconds ..."
            return (f"{waited}: their resources never came free (a node lost, or the cluster busy); "
                    f"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S sets the wait")
        return last_line(exc)
    reasons = []
    for rank, err in sorted(failures.items()):
        if died(err):
            why = "its worker process died (killed, crashed or out of memory)"
        else:  # a peer's collective failing because of it: the first line names the error
            lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
            why = lines[0].replace(CALLBACK_PREFIX, "")[:200]
        reasons.append(f"rank {rank}: {why}")
    return "; ".join(reasons)
