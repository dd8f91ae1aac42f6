"""Fairness methods: what changes how a model is trained (or how its scores become decisions).

Built-in methods, one module each; each module implements the ``multifair_methods`` plugin hook and is
registered by name like a third-party plugin (``monai_multifair.plugins.builtin``; ``multifair plugins``
lists them with their options):

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
from monai_multifair.methods.erm import ERM
from monai_multifair.methods.fair_identity_scaling import (
    FairIdentityScaling,
    FairIdentityScalingOptions,
    FairIdentityScalingWeighting,
    group_loss_distances,
)
from monai_multifair.methods.group_dro import GroupDRO, GroupDROOptions, GroupDROWeighting
from monai_multifair.methods.multifair_modulation import MultiFairModulation
from monai_multifair.methods.resampling import (
    Resampling,
    ResamplingOptions,
    balanced_sampling_weights,
)
from monai_multifair.methods.reweighting import (
    InverseFrequencyWeighting,
    Reweighting,
    ReweightingOptions,
    inverse_frequency,
)
from monai_multifair.methods.threshold_optimizer import (
    ThresholdOptimization,
    ThresholdOptimizerOptions,
)

__all__ = [
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
