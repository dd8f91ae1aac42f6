"""Renamed keyword arguments: the old name still works for a while, with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings
from typing import Any

from monai_multifair.errors import MultiFairError


def renamed_keyword(where: str, old: str, new: str, old_value: Any, new_value: Any) -> Any:
    """The value of the keyword ``new``, taking the deprecated keyword ``old`` in its place.

    Returns ``new_value`` when ``old_value`` is ``None``; otherwise warns that ``old`` is deprecated and
    returns ``old_value``.

    Raises:
        MultiFairError: both keywords were given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise MultiFairError(f"{where}: give `{new}` only; `{old}` is its deprecated name, got both")
    warnings.warn(
        f"{where}: `{old}` is deprecated, write `{new}` (the same values)", DeprecationWarning, stacklevel=3
    )
    return old_value


def metric_label(label: Any) -> str:
    """A group label usable inside a ``/``-separated metric name (``group_auc/<label>``): ``/`` -> ``|``."""
    return str(label).replace("/", "|")
