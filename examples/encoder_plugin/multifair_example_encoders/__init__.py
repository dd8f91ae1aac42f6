"""Example encoder plugin for monai_multifair (see ``plugin.py`` for the hook)."""

from multifair_example_encoders.encoders import CharCNNTextEncoder, GeMCNNEncoder

__version__ = "0.1.0"

__all__ = ["CharCNNTextEncoder", "GeMCNNEncoder", "__version__"]
