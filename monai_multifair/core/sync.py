"""Detect and count host synchronisations (device values read back by the host) in a block of code.

A ``TorchDispatchMode`` that sees every aten op: ``.item()``/``bool(tensor)`` (``_local_scalar_dense``,
``is_nonzero``, ``equal``), ops whose output size depends on values (``nonzero``, ``masked_select``,
``unique``, boolean-mask indexing), copies from an accelerator to the CPU, and host reads through
``Tensor.numpy()`` / ``Tensor.tolist()``. It works on the CPU too,
where these ops do not stall anything but would on a GPU. ``torch.optim`` internals can be exempted.

Example:
    >>> with HostSyncCounter() as counter:
    ...     loss = step()            # forward, modulator, backward
    >>> counter.count, counter.ops    # 0, {} when the step is sync-free
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostSyncCounter", "HostSyncError"]

_aten = torch.ops.aten
SYNC_OPS = frozenset(
    {
        _aten._local_scalar_dense.default,
        _aten.is_nonzero.default,
        _aten.equal.default,
        _aten.nonzero.default,
        _aten.masked_select.default,
        _aten._unique.default,
        _aten._unique2.default,
        _aten.unique_dim.default,
        _aten.unique_consecutive.default,
        _aten.bincount.default,  # its output length is max(input) + 1: read back on an accelerator
    }
)
_INDEX_OPS = frozenset({_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default})
_COPY_OPS = frozenset({_aten._to_copy.default, _aten.copy_.default})


class HostSyncError(AssertionError):
    """Raised by :class:`HostSyncCounter` with ``raise_on_sync=True``."""


def _in_torch_optim() -> bool:
    frame = sys._getframe(3)
    while frame is not None:
        if "torch/optim/" in frame.f_code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back
    return False


def _is_sync(func: Any, args: tuple, kwargs: dict) -> bool:
    if func in SYNC_OPS:
        return True
    if func in _INDEX_OPS:  # boolean-mask indexing needs the number of selected elements
        return any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or ()) if i is not None
        )
    if func in _COPY_OPS:  # a copy from an accelerator to the host
        target = kwargs.get("device")
        if func is _aten.copy_.default:
            target = args[0].device if isinstance(args[0], torch.Tensor) else None
            sources = args[1:2]
        else:
            sources = args[:1]
        return str(target) == "cpu" and any(
            isinstance(a, torch.Tensor) and a.device.type != "cpu" for a in sources
        )
    return False


class HostSyncCounter(TorchDispatchMode):
    """Count (or forbid) host synchronisations inside a ``with`` block.

    Args:
        raise_on_sync: raise :class:`HostSyncError` at the first synchronising op.
        exempt_optimizers: do not count ops issued from inside ``torch.optim`` (an optimizer's step
            counters live on the host by design).

    Attributes:
        count: number of synchronising ops seen (exempt ones excluded).
        ops: ``Counter`` of their names.
        exempt: number of exempted ops.
    """

    def __init__(self, raise_on_sync: bool = False, exempt_optimizers: bool = True) -> None:
        super().__init__()
        self.raise_on_sync = raise_on_sync
        self.exempt_optimizers = exempt_optimizers
        self.ops: Counter[str] = Counter()
        self.exempt = 0

    def __enter__(self) -> HostSyncCounter:
        # Host reads through numpy/tolist never reach the dispatcher for CPU tensors (no copy is
        # needed there); on an accelerator they are device-to-host copies. Count them as reads too.
        self._originals = {name: getattr(torch.Tensor, name) for name in ("numpy", "tolist")}
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, self._wrap_host_read(name, original))
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)
        return super().__exit__(*exc)

    def _wrap_host_read(self, name: str, original: Any) -> Any:
        counter = self

        def read(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if counter.exempt_optimizers and _in_torch_optim():
                counter.exempt += 1
            elif counter.raise_on_sync:
                raise HostSyncError(f"host synchronisation inside the block: Tensor.{name}()")
            else:
                counter.ops[f"Tensor.{name}"] += 1
            return original(tensor, *args, **kwargs)

        return read

    @property
    def count(self) -> int:
        return sum(self.ops.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is_sync(func, args, kwargs):
            if self.exempt_optimizers and _in_torch_optim():
                self.exempt += 1
            elif self.raise_on_sync:
                raise HostSyncError(f"host synchronisation inside the block: {func}")
            else:
                self.ops[str(func)] += 1
        return func(*args, **kwargs)
