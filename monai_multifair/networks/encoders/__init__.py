"""monai_multifair.networks.encoders."""

__all__: list[str] = []
