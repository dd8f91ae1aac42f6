"""monai_multifair.networks.blocks."""

__all__: list[str] = []
