"""Config -> validated RunPlan. Every bad input fails here, with one line, before Ray starts."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from commbench.comm import schemes
from commbench.errors import PlanError, first_line
from commbench.host import available_cores
from commbench.models.sources import factory_digest
from commbench.settings import check
from commbench.results.store import HASHED_FIELDS, LATER_FIELDS

@dataclass(frozen=True)
class RunPlan:
    model: str
    model_kwargs: dict[str, Any]  # num_classes and the variant (alpha, groups, ...); a factory's arguments
    num_classes: int  # of the synthetic labels: the model's output width
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
    compression: str  # the scheme (comm/schemes/<name>.py)
    compression_params: dict[str, Any]  # its parameters, defaults filled in
    cluster_kind: str
    cluster_address: str | None
    workers_per_node: int
    cpus_per_worker: float | None
    threads_per_worker: int | None
    max_restarts: int  # failure.max_restarts: Ray Train restarts of a failed worker group
    lr: float  # plain SGD on a fixed synthetic batch; momentum > 0 for convergence runs
    momentum: float
    bandwidth_bits_per_s: float | None = None  # network.*: the emulated cluster's links
    latency_s: float | None = None
    loss_percent: float | None = None
    model_digest: str | None = None  # a user's factory: its module's source, so an edit to it is a new run

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
    # A key no schema types (model.num_classes: the model's file sets it). bool is an int in Python:
    # "num_classes=true" is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise PlanError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise PlanError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


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


def _model(cfg_model: Mapping[str, Any], image_size: int) -> tuple[str, dict[str, Any], int]:
    """(id, keyword arguments, classes): the model exists and takes the run's image size."""
    from commbench.models import MODEL_ERRORS, get_spec, min_image_size, output_classes
    from commbench.models.sources import model_id

    name, kwargs = model_id(cfg_model)
    try:
        spec = get_spec(name)
    except MODEL_ERRORS as exc:
        raise PlanError(str(exc)) from None
    if "num_classes" in kwargs:  # else the workers' build_model fails, after Ray started
        kwargs["num_classes"] = _positive_int("model.num_classes", kwargs["num_classes"])
    try:
        if spec.open or "num_classes" not in kwargs:  # a library's or a user's model: run it to know
            return name, kwargs, output_classes(name, image_size, **kwargs)
        minimum = min_image_size(name, **{k: v for k, v in kwargs.items() if k != "num_classes"})
    except (TypeError, ValueError) as exc:
        message = first_line(exc)
        raise PlanError(message if message.startswith((name, "model._target_")) else f"model {name}: {message}") from None
    if image_size < minimum:
        raise PlanError(f"image_size={image_size} is too small for {name}: its minimum is {minimum}")
    return name, kwargs, kwargs["num_classes"]


def _network(cfg_network: Mapping[str, Any], cluster_kind: str) -> dict[str, float | None]:
    from commbench.units import NetworkSpecError, parse_bandwidth, parse_latency

    net = cfg_network or {}
    try:
        out = {
            "bandwidth_bits_per_s": None if net.get("bandwidth") is None else parse_bandwidth(net["bandwidth"]),
            "latency_s": None if net.get("latency") is None else parse_latency(net["latency"]),
            "loss_percent": None if net.get("loss") is None else _percent("network.loss", net["loss"]),
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


def _compression(cfg_compression: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    params = dict(cfg_compression or {})
    name = str(params.pop("name", None))  # composed configs always name one
    try:
        return name, schemes.validate(name, params)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


# Ray clusters a run joins (cluster.address), named for how they were started: the record says so.
JOINED_KINDS = ("ray", "compose", "slurm", "kuberay")


def _cluster_kind(kind: str, address: str | None) -> str:
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


def _threads(given: int | None, address: str | None) -> int | None:
    """Torch threads per worker. Workers that share this machine (no cluster.address) get one each
    at every N, nodes=1 included: E(N) then compares like with like, not N workers splitting the
    cores against one that had them all. On a cluster: null, the node's cores / its workers."""
    return given if given is not None or address else 1


def declared_value(cfg: Mapping[str, Any], key: str) -> Any:
    """The config's value of a key commbench/settings.py declares, checked by its declaration."""
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    try:
        return check(key, node)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def make_plan(cfg: Mapping[str, Any]) -> RunPlan:
    """Validate a resolved config (a plain mapping, e.g. OmegaConf.to_container) into a RunPlan."""
    value = functools.partial(declared_value, cfg)
    nodes, steps = value("nodes"), value("steps")
    try:
        warmup = value("warmup")
    except PlanError as exc:  # DDP rebuilds its buckets after the first step: timing it records another layout
        raise PlanError(f"{exc}: DDP rebuilds its gradient buckets after the first step, so a timed first step "
                        "would record one bucket instead of the real layout") from None
    image_size = value("image_size")
    compression, compression_params = _compression(cfg.get("compression"))
    model, model_kwargs, num_classes = _model(cfg.get("model") or {}, image_size)
    address = value("cluster.address")
    cluster_kind = _cluster_kind(value("cluster.kind"), address)
    network = _network(cfg.get("network"), cluster_kind)
    bucket_cap_mb = value("ddp.bucket_cap_mb")
    scheme = schemes.SCHEMES[compression]
    if scheme.single_bucket:
        bucket_cap_mb = schemes.SINGLE_BUCKET_MB  # one bucket: see the scheme's module in comm/schemes/
    problem = scheme.warmup_problem(warmup, compression_params)
    if problem:
        raise PlanError(problem)
    if not address:
        check_local_capacity(nodes)
    if cluster_kind == "emulated":
        _can_emulate(network)
    return RunPlan(
        model=model,
        model_kwargs=model_kwargs,
        num_classes=num_classes,
        nodes=nodes,
        steps=steps,
        warmup=warmup,
        batch_size=value("batch_size"),
        image_size=image_size,
        seed=value("seed"),
        use_gpu=value("use_gpu"),
        results_dir=writable_dir(value("results_dir")),
        resume=value("resume"),
        collective_timeout_s=value("collective_timeout_s"),
        bucket_cap_mb=bucket_cap_mb,
        broadcast_buffers=value("ddp.broadcast_buffers"),
        compression=compression,
        compression_params=compression_params,
        cluster_kind=cluster_kind,
        cluster_address=address or None,
        workers_per_node=value("cluster.workers_per_node"),
        cpus_per_worker=value("cluster.cpus_per_worker"),
        threads_per_worker=_threads(value("cluster.threads_per_worker"), address),
        max_restarts=value("failure.max_restarts"),
        lr=value("optimizer.lr"),
        momentum=value("optimizer.momentum"),
        model_digest=factory_digest(model),
        **network,
    )
