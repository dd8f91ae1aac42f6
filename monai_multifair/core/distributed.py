"""Distributed helpers: all-gather of detached statistics inputs, and a process group that ends cleanly.

Every rank computes identical coefficients from the gathered batch (:func:`gather_batch`).
:func:`distributed_process_group` starts ``torch.distributed`` and ends it in the one order that cannot
deadlock at exit (see :func:`shutdown_process_group`); use it for every ``torchrun`` worker.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from monai_multifair.errors import MultiFairError, raised_on_every_rank

__all__ = [
    "all_gather_objects",
    "barrier",
    "default_backend",
    "distributed_process_group",
    "gather_batch",
    "on_rank_zero",
    "rank",
    "shutdown_process_group",
    "world_size",
]


def world_size(process_group: object | None = None) -> int:
    """Number of ranks in ``process_group`` (1 when torch.distributed is not initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(process_group)


def rank(process_group: object | None = None) -> int:
    """This process's rank in ``process_group`` (0 when torch.distributed is not initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0
    return dist.get_rank(process_group)


def barrier() -> None:
    """Wait for every rank (nothing to do in one process)."""
    if world_size() > 1:
        dist.barrier()


def all_gather_objects(value: Any) -> list[Any]:
    """``[value of rank 0, value of rank 1, ...]`` (picklable host objects; ``[value]`` in one process)."""
    if world_size() == 1:
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def on_rank_zero(function: Callable[[], Any]) -> Any:
    """Run ``function`` on rank 0 only and give every rank its result, or raise its error on every rank.

    For decisions that must be taken once and seen by all (may a run folder be written to, which
    checkpoint to resume from): a ``MultiFairError`` (or ``OSError``) on rank 0 is raised on every rank
    with the same message, so no rank waits at the next collective for a peer that stopped.
    """
    if world_size() == 1:
        return function()
    payload: list[Any] = [None]
    if rank() == 0:
        try:
            payload[0] = ("ok", function())
        except (MultiFairError, OSError) as error:
            payload[0] = ("error", f"{type(error).__name__}", str(error))
    dist.broadcast_object_list(payload, src=0)
    outcome = payload[0]
    if outcome[0] == "error":
        with raised_on_every_rank():  # the command line prints it once, on rank 0
            if outcome[1] == "MultiFairError":
                raise MultiFairError(outcome[2])
            raise OSError(outcome[2])
    return outcome[1]


def default_backend() -> str:
    """``"cpu:gloo,cuda:nccl"`` when CUDA is available (CPU and CUDA tensors each use their backend),
    else ``"gloo"``."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def gather_batch(tensors: list[Tensor], process_group: object | None = None) -> list[Tensor]:
    """Concatenate each tensor over ranks along dim 0 (rank order); identity in one process.

    Every rank must hold the same batch size (``DistributedSampler`` guarantees this). Tensors are
    detached; bool tensors travel as uint8 (gloo has no bool all-gather).
    """
    if world_size(process_group) == 1:
        return tensors
    out = []
    for t in tensors:
        t = t.detach()
        is_bool = t.dtype == torch.bool
        send = (t.to(torch.uint8) if is_bool else t).contiguous()
        parts = [torch.empty_like(send) for _ in range(dist.get_world_size(process_group))]
        dist.all_gather(parts, send, group=process_group)
        joined = torch.cat(parts, dim=0)
        out.append(joined.to(torch.bool) if is_bool else joined)
    return out


def shutdown_process_group(*, synchronize: bool = True) -> None:
    """Destroy the default process group in an order that cannot deadlock at exit.

    The hazard (pytorch/pytorch#75097, #190489): when the last reference to a gloo process group is
    dropped by a DDP ``Reducer`` being deallocated (a DDP module freed at interpreter exit, after
    ``destroy_process_group``), ``~ProcessGroupGloo`` joins its work threads while holding the GIL, and a
    work thread that needs the GIL to free a finished ``AsyncWork`` never gets it. So the order is:

    1. the caller has released every DDP-wrapped module, engine, optimizer and tensor tied to the group
       (let them go out of scope: run the work in a function that returns first);
    2. ``gc.collect()`` frees what reference cycles still hold (ignite engines and their handlers);
    3. ``barrier()`` (when ``synchronize``): every rank has finished its collectives;
    4. ``destroy_process_group()`` drops the last reference through the binding that releases the GIL.

    Does nothing when ``torch.distributed`` is not initialised.

    Args:
        synchronize: wait for every rank before destroying (the success path). Pass ``False`` on an
            error path, where a peer may never reach the barrier.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    if synchronize:
        dist.barrier()
    dist.destroy_process_group()
    gc.collect()


@contextlib.contextmanager
def distributed_process_group(backend: str | None = None, *, timeout_s: float = 600.0) -> Iterator[bool]:
    """Run a block inside ``torch.distributed`` when launched by ``torchrun``, and end it cleanly.

    Initialises the default process group from the ``torchrun`` environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``...) when it is set and no group exists yet, and destroys it with
    :func:`shutdown_process_group` on the way out, on success and on error. On an error the
    traceback's frames are cleared first, so that the locals they hold (a DDP module, a trainer) are
    freed before the group, not at interpreter exit; the exception then propagates (torchrun reports
    the failing rank and stops the others).

    Keep every object that holds the group (DDP modules, engines, optimizers) inside a function called
    in the block, so that they are released when it returns::

        def run(args):                      # everything that holds the process group lives here
            model = DistributedDataParallel(net)
            ...

        def main():
            with distributed_process_group("gloo", timeout_s=60) as distributed:
                run(args)

    Args:
        backend: ``"gloo"``, ``"nccl"``... (default :func:`default_backend`: gloo for CPU tensors and,
            when CUDA is available, nccl for CUDA tensors).
        timeout_s: collective and rendezvous timeout, in seconds (a stuck peer fails instead of hanging).

    Yields:
        ``True`` when running distributed (a group exists), ``False`` for a plain single process.
    """
    owned = False
    if "RANK" in os.environ and dist.is_available() and not dist.is_initialized():
        if backend is None:
            backend = default_backend()
        if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        owned = True
    distributed = dist.is_available() and dist.is_initialized()
    try:
        yield distributed
    except BaseException as error:
        if owned:
            traceback.clear_frames(error.__traceback__)
            shutdown_process_group(synchronize=False)
        raise
    if owned:
        shutdown_process_group()
