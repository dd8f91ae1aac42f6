"""All-gather of detached statistics inputs, so every rank computes identical coefficients."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather_batch", "world_size"]


def world_size(process_group: object | None = None) -> int:
    """Number of ranks in ``process_group`` (1 when torch.distributed is not initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(process_group)


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
