"""monai_multifair.plugins."""

__all__: list[str] = []
