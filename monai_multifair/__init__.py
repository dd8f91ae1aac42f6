"""monai_multifair: balanced and fair multimodal medical classification (MultiFair) for MONAI.

The public surface is what ``__all__`` lists. The core (:mod:`monai_multifair.core`) is plain torch;
:mod:`monai_multifair.handlers` adapts it to MONAI/Ignite workflows.
"""

from monai_multifair.core import DualLevelGradientModulator, GroupEncoder, MultiFairConfig

__version__ = "0.1.0"

__all__ = ["DualLevelGradientModulator", "GroupEncoder", "MultiFairConfig", "__version__"]
