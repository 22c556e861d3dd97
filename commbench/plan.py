"""Config -> validated RunPlan. Every bad input fails here, with one line, before Ray starts."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from commbench.comm import schemes
from commbench.errors import PlanError
from commbench.host import available_cores
from commbench.results.store import HASHED_FIELDS, LATER_FIELDS

@dataclass(frozen=True)
class RunPlan:
    model: str
    model_kwargs: dict[str, Any]  # num_classes and the variant (alpha, groups, ...)
    nodes: int
    steps: int
    warmup: int
    batch_size: int
    image_size: int
    seed: int
    use_gpu: bool
    results_dir: str  # absolute
    resume: bool
    collective_timeout_s: float
    bucket_cap_mb: float
    broadcast_buffers: bool
    compression: str  # the scheme (comm/compression.py)
    compression_params: dict[str, Any]  # its parameters, defaults filled in
    cluster_kind: str
    cluster_address: str | None
    workers_per_node: int
    cpus_per_worker: float | None
    threads_per_worker: int | None
    max_restarts: int = 0  # failure.max_restarts: Ray Train restarts of a failed worker group
    lr: float = 1e-3  # plain SGD on a fixed synthetic batch; momentum > 0 for convergence runs
    momentum: float = 0.0
    bandwidth_bits_per_s: float | None = None  # network.*: the emulated cluster's links
    latency_s: float | None = None
    loss_percent: float | None = None

    @property
    def where(self) -> str:
        """The cluster in words: its kind, and the address a joined one has."""
        return " ".join(filter(None, (self.cluster_kind, self.cluster_address)))

    @property
    def runs_file(self) -> Path:
        return Path(self.results_dir) / "runs.jsonl"

    def identity(self) -> dict[str, Any]:
        plan = asdict(self)
        return {k: plan[k] for k in HASHED_FIELDS if k not in LATER_FIELDS or plan[k] != LATER_FIELDS[k]}

    def config_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def setup(self) -> dict[str, Any]:
        """The setup identity (results.setup) as far as the driver knows it; a run's record then
        has the workers' own threads, cores and device."""
        return {"cluster_kind": self.cluster_kind, "cluster_address": self.cluster_address,
                "bandwidth_bits_per_s": self.bandwidth_bits_per_s, "latency_s": self.latency_s,
                "loss_percent": self.loss_percent, "use_gpu": self.use_gpu, "compression": self.compression,
                "compression_params": self.compression_params, "bucket_cap_mb": self.bucket_cap_mb,
                "broadcast_buffers": self.broadcast_buffers, "threads_per_worker": self.threads_per_worker,
                "image_size": self.image_size, "batch_size": self.batch_size,
                # this machine when the workers run on it; on a cluster the driver's machine says nothing
                "host": None if self.cluster_address else socket.gethostname(),
                "host_cpus": None if self.cluster_address else available_cores()}

    def worker_config(self) -> dict[str, Any]:
        """What each Ray worker needs, as plain data."""
        return asdict(self)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    # bool is an int in Python; "nodes=true" is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise PlanError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise PlanError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _positive_float(name: str, value: Any) -> float:
    # <= float_info.max: inf (and an int too big for a float) passed here, then crashed the run
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= sys.float_info.max:
        raise PlanError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _optional(check, name: str, value: Any):
    return None if value is None else check(name, value)


def writable_dir(path: str | os.PathLike) -> str:
    """Prove `path` can hold results without creating it (a refused run writes nothing) or touching
    any results file: the folder itself if it exists, else the nearest folder above it that does."""
    if not isinstance(path, (str, os.PathLike)):  # results_dir=[1]: Path() would raise TypeError
        raise PlanError(f"results_dir must be a folder path, got {path!r}")
    target = Path(path).expanduser().resolve()
    try:
        existing = next(p for p in (target, *target.parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise PlanError(f"results_dir {str(target)!r} is not writable: {exc.strerror or exc}") from None
    return str(target)


def _model(cfg_model: Mapping[str, Any], image_size: int) -> tuple[str, dict[str, Any]]:
    from commbench.models import UnknownModelError, get_spec, min_image_size

    kwargs = dict(cfg_model)
    name = kwargs.pop("name", None)
    try:
        get_spec(name)
    except UnknownModelError as exc:
        raise PlanError(str(exc).strip("'\"")) from None
    if "num_classes" in kwargs:  # else the workers' build_model fails, after Ray started
        kwargs["num_classes"] = _positive_int("model.num_classes", kwargs["num_classes"])
    try:
        minimum = min_image_size(name, **{k: v for k, v in kwargs.items() if k != "num_classes"})
    except (TypeError, ValueError) as exc:
        message = str(exc).strip("'\"")
        raise PlanError(message if message.startswith(name) else f"model {name}: {message}") from None
    if image_size < minimum:
        raise PlanError(f"image_size={image_size} is too small for {name}: its minimum is {minimum}")
    return name, kwargs


def _network(cfg_network: Mapping[str, Any], cluster_kind: str) -> dict[str, float | None]:
    from commbench.units import NetworkSpecError, parse_bandwidth, parse_latency

    net = cfg_network or {}
    try:
        out = {
            "bandwidth_bits_per_s": None if net.get("bandwidth") is None else parse_bandwidth(net["bandwidth"]),
            "latency_s": None if net.get("latency") is None else parse_latency(net["latency"]),
            "loss_percent": _optional(_percent, "network.loss", net.get("loss")),
        }
    except NetworkSpecError as exc:
        raise PlanError(str(exc)) from None
    given = [k for k in ("bandwidth", "latency", "loss") if net.get(k) is not None]
    if given and cluster_kind != "emulated":
        raise PlanError(f"network.{given[0]} shapes links only with cluster=emulated "
                        f"(this run's cluster is {cluster_kind})")
    return out


def _can_emulate(network: Mapping[str, Any]) -> None:
    """Root and the tools, then netem where latency or loss is asked: checked once every value is
    known good, so a bad value is said before a missing tool; before Hydra or the cluster write anything."""
    from commbench.cluster.emulated import ClusterError, preflight
    from commbench.cluster.netns import netem_available

    try:
        preflight()
    except ClusterError as exc:
        raise PlanError(str(exc)) from None
    if (network["latency_s"] or network["loss_percent"]) and not netem_available():
        raise PlanError("network.latency/network.loss need the netem qdisc, which this kernel lacks "
                        "(rate shaping with network.bandwidth works)")


def _percent(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise PlanError(f"{name} must be a percentage from 0 to 100, got {value!r}")
    return float(value)


def _momentum(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise PlanError(f"optimizer.momentum must be a number in [0, 1), got {value!r}")
    return float(value)


def _compression(cfg_compression: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    params = dict(cfg_compression or {})
    name = str(params.pop("name", "none"))
    try:
        return name, schemes.validate(name, params)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


# Ray clusters a run joins (cluster.address), named for how they were started: the record says so.
JOINED_KINDS = ("ray", "compose", "slurm", "kuberay")


def _cluster_kind(cluster: Mapping[str, Any]) -> str:
    kind = str(cluster.get("kind", "local"))
    address = cluster.get("address")
    known = ("local", "emulated", *JOINED_KINDS)
    if kind not in known:  # anything else would run as local, recorded under this kind
        raise PlanError(f"unknown cluster.kind {kind!r}; known: {', '.join(sorted(known))}")
    if kind == "local" and address:  # joined, not embedded: not this machine's cores
        return "ray"
    if kind in JOINED_KINDS and not address:
        raise PlanError(f"cluster={kind} joins a running Ray cluster: set cluster.address=HOST:PORT "
                        "(or auto: the cluster this machine is a node of)")
    return kind


WORKER_BYTES = 0.5e9  # a worker process with torch and a compact CNN: 0.3-0.5 GB resident


def check_local_capacity(nodes: int) -> None:
    """Without cluster.address every worker is a process on this machine: as many as its memory holds."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    most = max(1, int(memory // WORKER_BYTES))
    if nodes > most:
        raise PlanError(f"nodes={nodes} is more than this machine can hold: {memory / 2**30:.0f} GiB of memory "
                        f"at about {WORKER_BYTES / 1e9:g} GB per worker process is at most {most}; "
                        "set cluster.address to run on a Ray cluster")


def _threads(cluster: Mapping[str, Any]) -> int | None:
    """Torch threads per worker. Workers that share this machine (no cluster.address) get one each
    at every N, nodes=1 included: E(N) then compares like with like, not N workers splitting the
    cores against one that had them all. On a cluster: null, the node's cores / its workers."""
    given = _optional(_positive_int, "cluster.threads_per_worker", cluster.get("threads_per_worker"))
    return given if given is not None or cluster.get("address") else 1


def make_plan(cfg: Mapping[str, Any]) -> RunPlan:
    """Validate a resolved config (a plain mapping, e.g. OmegaConf.to_container) into a RunPlan."""
    nodes = _positive_int("nodes", cfg.get("nodes"))
    steps = _positive_int("steps", cfg.get("steps"))
    try:
        warmup = _positive_int("warmup", cfg.get("warmup"))
    except PlanError as exc:  # DDP rebuilds its buckets after the first step: timing it records another layout
        raise PlanError(f"{exc}: DDP rebuilds its gradient buckets after the first step, so a timed first step "
                        "would record one bucket instead of the real layout") from None
    batch_size = _positive_int("batch_size", cfg.get("batch_size"))
    image_size = _positive_int("image_size", cfg.get("image_size"))
    seed = _positive_int("seed", cfg.get("seed"), minimum=0)
    timeout = _positive_float("collective_timeout_s", cfg.get("collective_timeout_s"))
    ddp = cfg.get("ddp") or {}
    optimizer = cfg.get("optimizer") or {}
    cluster = cfg.get("cluster") or {}
    compression, compression_params = _compression(cfg.get("compression"))
    model, model_kwargs = _model(cfg.get("model") or {}, image_size)
    cluster_kind = _cluster_kind(cluster)
    network = _network(cfg.get("network"), cluster_kind)
    bucket_cap_mb = _positive_float("ddp.bucket_cap_mb", ddp.get("bucket_cap_mb", 25))
    if compression == "topk" and warmup < 2:
        raise PlanError(f"compression=topk needs warmup >= 2, got {warmup}: its error feedback is rebuilt with "
                        "DDP's buckets after step 1, so the first timed step would send without it")
    if compression == "powersgd":
        bucket_cap_mb = schemes.SINGLE_BUCKET_MB  # one bucket: see comm/compression.py
        if warmup < compression_params["start_iter"]:
            raise PlanError(f"compression=powersgd starts compressing at step {compression_params['start_iter']}: "
                            f"warmup={warmup} would time uncompressed steps; set warmup >= compression.start_iter")
    if not cluster.get("address"):
        check_local_capacity(nodes)
    if cluster_kind == "emulated":
        _can_emulate(network)
    return RunPlan(
        model=model,
        model_kwargs=model_kwargs,
        nodes=nodes,
        steps=steps,
        warmup=warmup,
        batch_size=batch_size,
        image_size=image_size,
        seed=seed,
        use_gpu=bool(cfg.get("use_gpu", False)),
        results_dir=writable_dir(cfg.get("results_dir") or "results"),
        resume=bool(cfg.get("resume", True)),
        collective_timeout_s=timeout,
        bucket_cap_mb=bucket_cap_mb,
        broadcast_buffers=bool(ddp.get("broadcast_buffers", True)),
        compression=compression,
        compression_params=compression_params,
        cluster_kind=cluster_kind,
        cluster_address=cluster.get("address") or None,
        workers_per_node=_positive_int("cluster.workers_per_node", cluster.get("workers_per_node", 1)),
        cpus_per_worker=_optional(_positive_float, "cluster.cpus_per_worker", cluster.get("cpus_per_worker")),
        threads_per_worker=_threads(cluster),
        max_restarts=_positive_int("failure.max_restarts", (cfg.get("failure") or {}).get("max_restarts", 0), minimum=0),
        lr=_positive_float("optimizer.lr", optimizer.get("lr", 1e-3)),
        momentum=_momentum(optimizer.get("momentum", 0.0)),
        **network,
    )
