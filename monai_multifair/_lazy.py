"""``lazy_exports``: the module-level ``__getattr__`` / ``__dir__`` (PEP 562) of a package whose heavy public
names (torch, MONAI, pandas) are imported on first use, so that ``multifair --help`` starts quickly."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        table: public name -> module that defines it (imported on first access).
        namespace: the package's ``globals()``: a name once imported is stored there, so later look-ups
            never reach ``__getattr__``; its ``__all__`` is read by ``__dir__``.

    A name not in ``table`` that is a submodule (``monai_multifair.engine``) is imported as such; any
    other name raises ``AttributeError`` as a plain module would.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            if importlib.util.find_spec(f"{package}.{name}") is not None:  # a submodule not imported yet
                return importlib.import_module(f"{package}.{name}")
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
