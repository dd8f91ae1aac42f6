"""monai_multifair.handlers."""

__all__: list[str] = []
