"""``CompiledStep``: one part of the modulator step run through ``torch.compile`` (``MultiFairConfig.compile``).

The eager function stays the reference. A ``CompiledStep`` compiles it for the first input signature it
sees (shapes, dtypes, devices, ``requires_grad`` and which optional inputs are ``None``) and runs every
other signature eagerly, so a smaller last batch neither recompiles nor waits for a compiler: it
runs the same maths eagerly. The wrapped functions are pure (they return new state instead of writing
buffers), so a failed first compiled call can fall back to the eager function without side effects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from monai_multifair.errors import MultiFairError

__all__ = ["CompiledStep", "compile_enabled"]

logger = logging.getLogger(__name__)


def compile_enabled(setting: str, device: torch.device) -> bool:
    """Whether ``compile=setting`` compiles on ``device``: ``on`` everywhere, ``auto`` on CUDA only."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def _signature(value: Any) -> Any:
    if isinstance(value, Tensor):
        return (tuple(value.shape), value.dtype, value.device, value.requires_grad)
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    return value if value is None else type(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


class CompiledStep:
    """Run ``fn(*args)`` compiled for its first input signature, eagerly for any other.

    Args:
        fn: a pure function of tensors (module state passed in, new state returned).
        name: what ``fn`` computes, for messages.
        setting: ``MultiFairConfig.compile``: ``"auto"``, ``"on"`` or ``"off"``.

    Raises:
        MultiFairError: at the first compiled call with ``setting="on"``, when compiling fails (the
            cause is chained). With ``"auto"`` the failure is logged as a warning and every later call
            runs eagerly.
    """

    def __init__(self, fn: Callable[..., Any], name: str, setting: str) -> None:
        self.fn = fn
        self.name = name
        self.setting = setting
        self.signature: Any = None
        self.failed = False
        self._compiled: Callable[..., Any] | None = None
        self._told_eager: set[Any] = set()
        #: Calls served by the compiled function and by the eager one (for tests and benchmarks).
        self.compiled_calls = 0
        self.eager_calls = 0

    def _eager(self, *args: Any) -> Any:
        self.eager_calls += 1
        return self.fn(*args)

    def __call__(self, device: torch.device, *args: Any) -> Any:
        if self.failed or not compile_enabled(self.setting, device):
            return self._eager(*args)
        signature = (_signature(args), torch.is_grad_enabled())
        if self.signature is None:
            self.signature = signature
        elif signature != self.signature:
            if signature not in self._told_eager:
                self._told_eager.add(signature)
                logger.info(
                    "MultiFair: the compiled %s serves its first input shapes; this batch's shapes differ, "
                    "so it runs eagerly (same results)",
                    self.name,
                )
            return self._eager(*args)
        if self._compiled is not None:
            self.compiled_calls += 1
            return self._compiled(*args)
        compiled = torch.compile(self.fn, fullgraph=True, dynamic=False)
        try:
            out = compiled(*args)
        except Exception as exc:  # compiler missing or op unsupported: the eager function still works
            cause = f"{type(exc).__name__}: {_first_line(exc)}"
            if self.setting == "on":
                raise MultiFairError(
                    f"`compile`='on' but compiling the modulator's {self.name} failed ({cause}); "
                    "set compile='auto' to fall back to the eager step, or 'off'"
                ) from exc
            self.failed = True
            logger.warning(
                "MultiFair: compiling the modulator's %s failed (%s); falling back to the eager step "
                "(compile='auto')",
                self.name,
                cause,
            )
            return self._eager(*args)
        self._compiled = compiled
        self.compiled_calls += 1
        logger.info("MultiFair: the modulator's %s runs compiled (torch.compile)", self.name)
        return out
