"""Fairness methods: what changes how a model is trained (or how its scores become decisions).

Built-in methods, one module each, registered through the ``multifair_methods`` plugin hook like any
third-party method (``multifair plugins`` lists them with their options):

| name | kind | what it does | source |
|---|---|---|---|
| ``erm`` | training | plain training (the baseline) | |
| ``multifair`` | training | dual-level gradient modulation; presets ``default``, ``paper``, ``reference``, ``modality-only`` (CGGM-style), ``group-only`` | Zubair et al., IEEE TMI 2026 |
| ``reweighting`` | training | inverse-frequency loss weights by group or (group, label) | Idrissi et al., CLeaR 2022 |
| ``resampling`` | training | group- or (group, label)-balanced sampling | Idrissi et al., CLeaR 2022 |
| ``groupdro`` | training | online group DRO | Sagawa et al., ICLR 2020 |
| ``fis`` | training | Fair Identity Scaling | Luo et al., CVPR 2024 |
| ``threshold-optimizer`` | postprocessing | fairlearn's ``ThresholdOptimizer`` | Hardt et al., NeurIPS 2016 |

YAML: ``method: {name: groupdro, options: {eta: 0.05}}`` and, optionally,
``postprocessing: {name: threshold-optimizer, options: {constraints: equalized_odds}}``.
"""

from monai_multifair.methods.base import (
    FairnessMethod,
    LossWeightingMethod,
    MethodContext,
    PostProcessor,
    SampleWeighting,
)
from monai_multifair.methods.erm import ERM, ERM_SPEC
from monai_multifair.methods.fair_identity_scaling import (
    FIS_SPEC,
    FairIdentityScaling,
    FairIdentityScalingOptions,
    FairIdentityScalingWeighting,
    group_loss_distances,
)
from monai_multifair.methods.group_dro import GROUPDRO_SPEC, GroupDRO, GroupDROOptions, GroupDROWeighting
from monai_multifair.methods.multifair_modulation import MULTIFAIR_SPEC, MultiFairModulation
from monai_multifair.methods.resampling import (
    RESAMPLING_SPEC,
    Resampling,
    ResamplingOptions,
    balanced_sampling_weights,
)
from monai_multifair.methods.reweighting import (
    REWEIGHTING_SPEC,
    InverseFrequencyWeighting,
    Reweighting,
    ReweightingOptions,
    inverse_frequency,
)
from monai_multifair.methods.threshold_optimizer import (
    THRESHOLD_OPTIMIZER_SPEC,
    ThresholdOptimization,
    ThresholdOptimizerOptions,
)

#: The built-in method specs, registered by ``monai_multifair.plugins.builtin``.
BUILTIN_METHODS = (
    ERM_SPEC,
    MULTIFAIR_SPEC,
    REWEIGHTING_SPEC,
    RESAMPLING_SPEC,
    GROUPDRO_SPEC,
    FIS_SPEC,
    THRESHOLD_OPTIMIZER_SPEC,
)

__all__ = [
    "BUILTIN_METHODS",
    "ERM",
    "FairIdentityScaling",
    "FairIdentityScalingOptions",
    "FairIdentityScalingWeighting",
    "FairnessMethod",
    "GroupDRO",
    "GroupDROOptions",
    "GroupDROWeighting",
    "InverseFrequencyWeighting",
    "LossWeightingMethod",
    "MethodContext",
    "MultiFairModulation",
    "PostProcessor",
    "Resampling",
    "ResamplingOptions",
    "Reweighting",
    "ReweightingOptions",
    "SampleWeighting",
    "ThresholdOptimization",
    "ThresholdOptimizerOptions",
    "balanced_sampling_weights",
    "group_loss_distances",
    "inverse_frequency",
]
