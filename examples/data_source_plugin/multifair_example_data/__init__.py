"""Example data-source plugin for monai_multifair (the source and its hook are in ``pbc.py``)."""

from multifair_example_data.pbc import PBCOptions, load_pbc

__version__ = "0.1.0"

__all__ = ["PBCOptions", "__version__", "load_pbc"]
