"""monai_multifair: balanced and fair multimodal medical classification (MultiFair) for MONAI.

The public surface is what ``__all__`` lists. The core (:mod:`monai_multifair.core`) is plain torch;
:mod:`monai_multifair.handlers` adapts it to MONAI/Ignite workflows, :mod:`monai_multifair.metrics`
and :mod:`monai_multifair.report` audit a model through fairlearn.

Importing the package imports neither torch nor pandas: each public name is imported from its module on
first use (PEP 562 ``__getattr__``), so that ``multifair --version``, ``--help`` and a config error
answer without loading them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai_multifair._lazy import lazy_exports

__version__ = "0.1.0"

__all__ = [
    "AuditReport",
    "DualLevelGradientModulator",
    "GroupEncoder",
    "MultiFairConfig",
    "ReferenceModulator",
    "__version__",
]

#: The module each lazily imported public name comes from.
_LAZY = {
    "AuditReport": "monai_multifair.report",
    "DualLevelGradientModulator": "monai_multifair.core",
    "GroupEncoder": "monai_multifair.core",
    "MultiFairConfig": "monai_multifair.core",
    "ReferenceModulator": "monai_multifair.core",
}

if TYPE_CHECKING:
    from monai_multifair.core import (
        DualLevelGradientModulator,
        GroupEncoder,
        MultiFairConfig,
        ReferenceModulator,
    )
    from monai_multifair.report import AuditReport


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
