"""Networks for multimodal classification: fusion blocks (``blocks``) and complete nets (``nets``).

Encoders live in :mod:`monai_multifair.networks.encoders` and are built by name through the encoder
plugin registry (:func:`monai_multifair.plugins.create_encoder`).
"""

from monai_multifair.networks.blocks import AttentionFusion, DemographicToken, GuideHead
from monai_multifair.networks.nets import MultimodalFusionClassifier, build_encoder

__all__ = ["AttentionFusion", "DemographicToken", "GuideHead", "MultimodalFusionClassifier", "build_encoder"]
