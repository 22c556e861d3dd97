"""What the compression schemes' hooks share (a scheme's own code is its module in comm/schemes/), and
`hook_for`, which builds a scheme's hook from the registry, timed (hooks.timed), its codec included.

Every hook is counted at its collectives by the ByteCounter: the half-width casts through the counting
all-reduce, the all-gather schemes (top-k, int8) through `gather_and_average`, PowerSGD's own all-reduces
in a private copy of torch's module whose `dist` counts (`private_powersgd_module`).
"""

import importlib.util
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from commbench.comm.hooks import ByteCounter, counting_allreduce_hook, timed
from commbench.comm.schemes import SCHEMES

Future = torch.futures.Future


# ---------------------------------------------------------------- PowerSGD: torch's hook, counted
class CountingDist:
    """torch.distributed as torch's PowerSGD hook module sees it, with each all_reduce counted and its
    completion stamped."""

    def __init__(self, counter: ByteCounter):
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        return getattr(dist, name)

    def all_reduce(self, tensor: torch.Tensor, *args: Any, **kwargs: Any):
        span = self._counter.issued(tensor)
        return StampedWork(dist.all_reduce(tensor, *args, **kwargs), self._counter.done_of(span))


class StampedWork:
    """An async collective's Work whose future stamps its completion (PowerSGD calls get_future())."""

    def __init__(self, work, done: Callable) -> None:
        self._work, self._done = work, done

    def get_future(self) -> Future:
        return self._work.get_future().then(self._done)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._work, name)


POWERSGD = "torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook"


def private_powersgd_module(counter: ByteCounter):
    """A private copy of torch's PowerSGD hook module whose `dist` (and default_hooks' all-reduce,
    used before start_iter) count through `counter`: torch's own module, and every other DDP in the
    process, stay untouched."""
    spec = importlib.util.find_spec(POWERSGD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counting = CountingDist(counter)
    module.dist = counting

    def allreduce_fut(process_group, tensor):  # default_hooks._allreduce_fut, counted
        group = process_group if process_group is not None else dist.group.WORLD
        tensor.div_(group.size())
        return counting.all_reduce(tensor, group=group, async_op=True).get_future().then(lambda f: f.value()[0])

    module.default = type("CountedDefaultHooks", (), {"_allreduce_fut": staticmethod(allreduce_fut)})
    return module


# ---------------------------------------------------------------- shared by the schemes
def cast_allreduce(counter: ByteCounter, dtype: str) -> tuple[Any, Callable]:
    """torch's fp16/bf16 compress wrapper around the counting all-reduce: the counter sees the
    half-width tensor it really reduces."""
    return counter, getattr(default_hooks, f"{dtype}_compress_wrapper")(counting_allreduce_hook)


def gather_and_average(counter: ByteCounter, grad: torch.Tensor, parts: list[torch.Tensor],
                       add: Callable[..., Any]) -> torch.futures.Future[torch.Tensor]:
    """All-gather this rank's encoded `parts`, then set `grad` (the bucket) to the mean over ranks of
    what add(grad, *a rank's parts) decodes into it."""
    gathered = torch.futures.collect_all([counter.all_gather(part) for part in parts])

    def decode(fut) -> torch.Tensor:
        per_part = [f.value() for f in fut.value()]  # per part, every rank's tensor
        grad.zero_()
        for rank_parts in zip(*per_part):
            add(grad, *rank_parts)
        return grad.div_(counter.world_size)

    return gathered.then(decode)


def hook_for(name: str, params: dict[str, Any], counter: ByteCounter) -> tuple[Any, Callable]:
    """(state, hook) for DDP.register_comm_hook from the scheme's spec; every hook timed (hooks.timed),
    its codec included."""
    scheme = SCHEMES.get(name)
    if scheme is None:
        raise ValueError(f"unknown compression {name!r}")
    state, hook = scheme.hook(counter, params)
    return state, timed(hook, counter, late_collectives=scheme.late_collectives)
