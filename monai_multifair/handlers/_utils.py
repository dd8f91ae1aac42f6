"""Small helpers shared by the handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = ["batch_ids", "batch_item", "iteration_logits", "named_statistics", "register_iteration_event"]


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


def iteration_logits(engine: Any) -> torch.Tensor:
    """``engine.state.output[Keys.PRED]``, checked to be logits ``[B, C]``."""
    from monai.utils.enums import CommonKeys as Keys

    pred = engine.state.output[Keys.PRED]
    if not isinstance(pred, torch.Tensor) or pred.dim() != 2:
        raise MultiFairError(
            "expected engine.state.output[Keys.PRED] to be logits [B, C]; got "
            f"{type(pred).__name__} of shape {tuple(getattr(pred, 'shape', ()))}"
        )
    return pred


def batch_ids(batchdata: Any, key: str, argument: str, size: int, device: torch.device) -> torch.Tensor:
    """``batchdata[key]`` (labels or group ids) as a ``[B]`` long tensor on ``device``.

    Raises:
        MultiFairError: the key is missing, holds bool or floating values, or not one id per sample.
    """
    ids = torch.as_tensor(batch_item(batchdata, key, argument))
    if ids.dtype == torch.bool or ids.is_floating_point():
        raise MultiFairError(f"expected batch[{key!r}] (`{argument}`) to hold integer ids, got {ids.dtype}")
    if ids.numel() != size:
        raise MultiFairError(
            f"expected batch[{key!r}] (`{argument}`) to hold one id per sample ({size}), got shape "
            f"{tuple(ids.shape)}"
        )
    return ids.reshape(-1).to(device=device, dtype=torch.long, non_blocking=True)
