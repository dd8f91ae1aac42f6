"""monai_multifair: balanced and fair multimodal medical classification (MultiFair) for MONAI.

The public surface is what ``__all__`` lists. The core (:mod:`monai_multifair.core`) is plain torch;
:mod:`monai_multifair.handlers` adapts it to MONAI/Ignite workflows, :mod:`monai_multifair.metrics`
and :mod:`monai_multifair.report` audit a model through fairlearn.
"""

from typing import Any

from monai_multifair.core import DualLevelGradientModulator, GroupEncoder, MultiFairConfig, ReferenceModulator

__version__ = "0.1.0"

__all__ = [
    "AuditReport",
    "DualLevelGradientModulator",
    "GroupEncoder",
    "MultiFairConfig",
    "ReferenceModulator",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The audit report pulls in matplotlib and fairlearn: import it on first use only.
    if name == "AuditReport":
        from monai_multifair.report import AuditReport

        return AuditReport
    raise AttributeError(f"module 'monai_multifair' has no attribute {name!r}")
