"""Small helpers shared by the handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = ["batch_item", "named_statistics", "register_iteration_event"]


def batch_item(batchdata: Mapping[str, Any], key: str, argument: str) -> Any:
    """``batchdata[key]`` with an error naming ``argument`` and the available keys when it is missing."""
    if not isinstance(batchdata, Mapping):
        raise MultiFairError(
            f"expected the batch to be a dict (to read `{argument}`={key!r}), got {type(batchdata).__name__}"
        )
    if key not in batchdata:
        keys = [str(k) for k in batchdata]
        raise MultiFairError(
            f"`{argument}`={key!r} is not a key of the batch (keys: {', '.join(sorted(keys))})"
            + close_match_hint(key, keys)
        )
    return batchdata[key]


def register_iteration_event(engine: Any, event: Any, handler: Callable, owner: str, needs: str) -> bool:
    """Add ``handler`` on a MONAI ``IterationEvents`` event; ``False`` if it is already there (idempotent).

    Raises:
        MultiFairError: the engine does not fire ``event`` (it is not a MONAI engine such as ``needs``).
    """
    if engine.has_event_handler(handler, event):
        return False
    try:
        engine.add_event_handler(event, handler)
    except ValueError as error:
        raise MultiFairError(
            f"{type(engine).__name__} does not fire IterationEvents.{event.name}; {owner} needs a MONAI "
            f"engine such as {needs}"
        ) from error
    return True


def named_statistics(
    stats: Mapping[str, torch.Tensor], labels: Callable[[str, int], Sequence[str]], prefix: str
) -> dict[str, float]:
    """Device statistics as ``{prefix}{key}/{label}: float`` with one host transfer.

    ``labels(key, count)`` names the ``count`` entries of ``stats[key]``; a single ``""`` label names a
    scalar ``{prefix}{key}``.
    """
    if not stats:
        return {}
    flat = torch.cat([t.detach().double().reshape(-1) for t in stats.values()]).cpu().tolist()
    out: dict[str, float] = {}
    offset = 0
    for key, tensor in stats.items():
        count = tensor.numel()
        values = flat[offset : offset + count]
        offset += count
        for label, value in zip(labels(key, count), values):
            out[f"{prefix}{key}" + (f"/{label}" if label else "")] = value
    return out
