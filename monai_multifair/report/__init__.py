"""monai_multifair.report."""

__all__: list[str] = []
