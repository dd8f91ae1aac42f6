"""Complete networks."""

from monai_multifair.networks.nets.multimodal_fusion import MultimodalFusionClassifier, build_encoder

__all__ = ["MultimodalFusionClassifier", "build_encoder"]
