"""monai_multifair.metrics."""

__all__: list[str] = []
