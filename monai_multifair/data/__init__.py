"""monai_multifair.data."""

__all__: list[str] = []
