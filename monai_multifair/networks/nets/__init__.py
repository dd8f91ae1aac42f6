"""monai_multifair.networks.nets."""

__all__: list[str] = []
