"""Inside each Ray worker: build the model, wrap it in DDP with a counting comm hook, time the steps.

Rank 0 gathers every rank's figures (one all_gather_object under the process group's timeout) and
posts them to the worker group's board (pool.py), where the driver picks them up; a loop run on its
own (the test harness) returns them.
"""

from __future__ import annotations

import inspect
import os
import socket
import time
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from commbench.comm.clocks import clock_for
from commbench.comm.compression import hook_for
from commbench.comm.group import gather_to_rank0, join_group
from commbench.comm.hooks import ByteCounter, StepComm
from commbench.comm.wire import interface_bytes, interface_mtu
from commbench.host import available_cores
from commbench.models import build_model, count_params
from commbench.models.probe import heads
from commbench.split import rank_split
from commbench.stats import percentile


def layer_name(param_name: str) -> str:
    """'features.0.weight' -> 'features.0': bytes are attributed to the module that owns them."""
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name


class BufferBroadcasts:
    """DDP's per-forward buffer broadcast, counted (bytes) and stamped (start, end): communication
    in forward, kept out of compute."""

    def __init__(self, ddp: DDP, clock, world: int) -> None:
        self.sent: list[int] = []
        self.spans: list[tuple] = []
        if world == 1:  # one rank broadcasts to nobody: nothing is sent, its time stays in forward
            return
        # Private: DDP has no hook for its buffer sync; this one instance's method is wrapped
        # (tests/test_bytes.py pins it to the torch range in pyproject.toml), never DDP's class.
        original = ddp._distributed_broadcast_coalesced

        def counted(tensors, buffer_size, authoritative_rank=0):
            self.sent.append(sum(t.numel() * t.element_size() for t in tensors))
            start = clock.stamp()
            out = original(tensors, buffer_size, authoritative_rank)
            self.spans.append((start, clock.stamp()))
            return out

        ddp._distributed_broadcast_coalesced = counted

    def take(self) -> tuple[int, list[tuple]]:
        """This step's bytes and spans."""
        out = (sum(self.sent), self.spans)
        self.sent, self.spans = [], []
        return out


def buffer_sync_option(enabled: bool) -> dict[str, bool]:
    """DDP's per-forward buffer broadcast: `forward_sync_buffers` in newer torch, `broadcast_buffers` before."""
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        return {"forward_sync_buffers": enabled}
    return {"broadcast_buffers": enabled}


def synthetic_batch(cfg: dict[str, Any], num_classes: int, device: torch.device, rank: int):
    """One fixed random batch: the benchmark measures communication, not data loading."""
    gen = torch.Generator().manual_seed(cfg["seed"] * 1000 + rank)
    shape = (cfg["batch_size"], 3, cfg["image_size"], cfg["image_size"])
    images = torch.randn(shape, generator=gen).to(device)
    labels = torch.randint(0, num_classes, (cfg["batch_size"],), generator=gen).to(device)
    return images, labels


def bucket_table(step: StepComm, names: dict[int, str]) -> list[dict[str, Any]]:
    rows = []
    for b in sorted(step.buckets, key=lambda b: b.index):
        layers: dict[str, int] = {}
        for p in b.params:
            layer = layer_name(names[id(p)])
            layers[layer] = layers.get(layer, 0) + p.numel() * b.itemsize
        rows.append({"index": b.index, "dtype": b.dtype, "numel": b.numel,
                     "payload_bytes": b.payload_bytes, "params": len(b.params), "layers": layers})
    return rows


def step_figures(clock, stamps: tuple, comm: StepComm, buffers: list[tuple], buffer_bytes: int,
                 communicated: bool = True) -> dict[str, Any]:
    """One rank's step in seconds (split.rank_split), with its bytes. stamps: (start, backward start,
    backward end, end) from `clock`; the one place a step's clock points are resolved."""
    t0, b0, b1, end = stamps
    points = [b0, b1, end]
    for b in comm.buckets:  # a bucket that issued nothing encoded nothing; one not finished: at backward's end
        points += [b.ready, b.ready if b.issued is None else b.issued, b1 if b.final is None else b.final]
    for issue, done in comm.spans:
        points += [issue, b1 if done is None else done]
    for start, stop in buffers:
        points += [start, stop]
    secs = iter(clock.seconds(t0, points))
    b0_s, b1_s, end_s = next(secs), next(secs), next(secs)
    buckets = [(next(secs), next(secs), next(secs)) for _ in comm.buckets]
    spans = [(next(secs), next(secs)) for _ in comm.spans]
    buffer_spans = [(next(secs), next(secs)) for _ in buffers]
    fig = rank_split(b0_s, b1_s, end_s, buffer_spans, buckets, spans, communicated)
    fig.update(payload=comm.payload_bytes, gather_payload=comm.gather_bytes, collectives=comm.collectives,
               buffer_bytes=buffer_bytes)
    return fig


class Progress:
    """Rank 0 tells the driver where the cell is (its board: pool.py); other ranks, and a loop run
    outside a worker group (tests, bench), say nothing. Between steps, never inside a step's clocks,
    and fire and forget; at a new phase, else at most once every EVERY_S, so that rank 0 (which its
    peers wait for in their collectives) and the board's host spend next to nothing on it."""

    EVERY_S = 1.0

    def __init__(self, board=None, index: int = 0) -> None:
        self.board, self.index = board, index
        self.phase, self.sent = None, 0.0

    def __call__(self, phase: str, **figures: Any) -> None:
        now = time.monotonic()
        if self.board is None or (phase == self.phase and now - self.sent < self.EVERY_S):
            return
        self.phase, self.sent = phase, now
        self.board.report.remote(self.index, {"phase": phase, **figures})

    def attempt(self) -> int:
        """This start's number (1 = first; more after Ray restarted a failed worker group)."""
        if self.board is None:
            return 1
        import ray

        return ray.get(self.board.start.remote(self.index))


def wrap_model(cfg: dict[str, Any], device: torch.device) -> tuple[torch.nn.Module, DDP]:
    torch.manual_seed(cfg["seed"])  # same initial weights on every rank, as DDP expects
    model = build_model(cfg["model"], **cfg["model_kwargs"]).to(device)
    ddp = DDP(model, bucket_cap_mb=cfg["bucket_cap_mb"], gradient_as_bucket_view=True,
              **buffer_sync_option(cfg["broadcast_buffers"]))
    return model, ddp


def step_fn(cfg: dict[str, Any], ddp: DDP, device: torch.device, rank: int, clock) -> Callable[[], tuple]:
    """One training step on a fixed synthetic batch -> ((start, backward start, backward end, end), loss),
    stamps of `clock`: no synchronize inside the step on a GPU."""
    images, labels = synthetic_batch(cfg, cfg["num_classes"], device, rank)
    loss_fn = torch.nn.CrossEntropyLoss()
    # Default: a small plain-SGD step (random labels with momentum blow the loss up on some models).
    opt = torch.optim.SGD(ddp.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])

    def step() -> tuple[tuple, torch.Tensor]:
        t0 = clock.stamp()
        out = ddp(images)
        # inception_v3 (and GoogLeNet) in training return auxiliary heads beside the logits: torchvision's
        # Inception recipe adds 0.4x their loss (left out, they get no gradient and DDP fails on the next step).
        main, *aux = heads(out, len(labels)) if isinstance(out, tuple) else (out,)
        loss = loss_fn(main, labels)
        if aux:
            loss = loss + 0.4 * sum(loss_fn(a, labels) for a in aux)
        opt.zero_grad(set_to_none=False)
        b0 = clock.stamp()
        loss.backward()  # returns once DDP has waited for every bucket's collective
        b1 = clock.stamp()
        opt.step()
        return (t0, b0, b1, clock.stamp()), loss

    return step


def serve(group: dict[str, Any]) -> None:
    """Ray Train's per-worker function for a worker group (pool.py): run the cells the driver posts
    to the group's board, in order, until it posts None; rank 0 posts back each cell's figures."""
    import gc

    import ray

    board = ray.get_actor(group["board"])
    rank = dist.get_rank()
    board.join.remote(rank)
    index = ray.get(board.first_open.remote())  # after Ray restarted the group: the cell in flight
    while (cfg := ray.get(board.take.remote(index))) is not None:
        figures = train_loop(cfg, Progress(board, index) if rank == 0 else Progress())
        if figures is not None:
            ray.get(board.finish.remote(index, figures))
        gc.collect()  # drop the cell's model before the next one is built
        index += 1


def train_loop(cfg: dict[str, Any], progress: Progress | None = None) -> dict[str, Any] | None:
    """One cell on this worker: returns every rank's figures on rank 0."""
    t_enter = time.perf_counter()
    progress = progress or Progress()
    rank, world, device = join_group(cfg)
    attempt = progress.attempt() if rank == 0 else None
    progress("building the model")
    model, ddp = wrap_model(cfg, device)
    names = {id(p): n for n, p in model.named_parameters()}
    clock = clock_for(device)
    counter = ByteCounter(world, reduce=world > 1, clock=clock)
    ddp.register_comm_hook(*hook_for(cfg["compression"], cfg["compression_params"], counter))
    buffers = BufferBroadcasts(ddp, clock, world)
    step = step_fn(cfg, ddp, device, rank, clock)

    total = cfg["warmup"] + cfg["steps"]
    figures, losses, last = [], [], StepComm()
    ifname = os.environ.get("GLOO_SOCKET_IFNAME")  # set where workers have a real interface
    wire_before = None
    t_first_step = time.perf_counter()
    for i in range(total):
        if i == cfg["warmup"] and ifname:
            wire_before = interface_bytes(ifname)
        counter.start_step()
        stamps, loss = step()
        last = counter.end_step()
        buffer_bytes, buffer_spans = buffers.take()
        if i >= cfg["warmup"]:
            figures.append(step_figures(clock, stamps, last, buffer_spans, buffer_bytes, counter.reduce))
            losses.append(loss.item())
            progress(f"timed steps ({cfg['steps']})", done=len(figures), total=cfg["steps"], step_s=figures[-1]["step"])
        else:
            progress(f"warmup ({cfg['warmup']})", done=i + 1, total=cfg["warmup"])
    wire_after = interface_bytes(ifname) if wire_before else None

    mine = {
        "rank": rank,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "host_cpus": available_cores(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "params": count_params(model),
        "setup_s": t_first_step - t_enter,
        "steps": figures,
        "trace": rank_trace(figures),
        "attempt": attempt,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "buckets": bucket_table(last, names),
        "hook_order": [b.index for b in last.buckets],
        "wire": None if not wire_after else {
            "interface": ifname, "mtu": interface_mtu(ifname),
            "tx_per_step": (wire_after["tx"] - wire_before["tx"]) / cfg["steps"],
            "rx_per_step": (wire_after["rx"] - wire_before["rx"]) / cfg["steps"]},
    }
    mine["train_loop_s"] = time.perf_counter() - t_enter
    progress("gathering the figures")
    gathered = gather_to_rank0(mine)
    return None if gathered is None else {"ranks": gathered, "world_size": world}


def rank_trace(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """This rank's step profile, medians over the timed steps: the trace a replay or a prediction uses."""
    med = {k: percentile([f[k] for f in figures], 50) for k in ("forward", "backward", "codec", "optimizer")}
    offsets = [percentile(list(col), 50) for col in zip(*(f["ready_offsets"] for f in figures))]
    return {**{f"{k}_s": v for k, v in med.items()}, "ready_offsets_s": offsets}
