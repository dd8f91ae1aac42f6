"""Framework-free core of MultiFair (plain torch): device statistics, the modulator, its config.

A hand-written training loop uses it directly; :mod:`monai_multifair.handlers` adapts it to MONAI.
"""

from monai_multifair.core.distributed import distributed_process_group, shutdown_process_group
from monai_multifair.core.functional import (
    auc_by_group_and_overall,
    binary_auc,
    grouped_auc,
    logistic_group_statistic,
    surrogate_group_auc,
)
from monai_multifair.core.groups import GroupEncoder
from monai_multifair.core.guide import GuideHead, guide_logits_and_gradients
from monai_multifair.core.modulator import DualLevelGradientModulator, ModulatorBase, build_modulator
from monai_multifair.core.multifair_config import PRESETS, MultiFairConfig
from monai_multifair.core.reference import ReferenceModulator

__all__ = [
    "PRESETS",
    "DualLevelGradientModulator",
    "GroupEncoder",
    "GuideHead",
    "ModulatorBase",
    "MultiFairConfig",
    "ReferenceModulator",
    "auc_by_group_and_overall",
    "binary_auc",
    "build_modulator",
    "distributed_process_group",
    "grouped_auc",
    "guide_logits_and_gradients",
    "logistic_group_statistic",
    "shutdown_process_group",
    "surrogate_group_auc",
]
