"""monai_multifair.config."""

__all__: list[str] = []
