"""Reusable network blocks: attention fusion over modality tokens, the demographic token, guide heads."""

from monai_multifair.core.guide import GuideHead
from monai_multifair.networks.blocks.fusion import AttentionFusion, DemographicToken

__all__ = ["AttentionFusion", "DemographicToken", "GuideHead"]
