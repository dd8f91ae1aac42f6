"""Example fairness-method plugin for monai_multifair (see ``plugin.py`` for the hook)."""

from multifair_example_methods.focal import FocalLoss, FocalOptions, FocalWeighting

__version__ = "0.1.0"

__all__ = ["FocalLoss", "FocalOptions", "FocalWeighting", "__version__"]
