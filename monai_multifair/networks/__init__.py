"""monai_multifair.networks."""

__all__: list[str] = []
