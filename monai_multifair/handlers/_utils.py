"""Small helpers shared by the handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = ["batch_item", "register_iteration_event"]


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
