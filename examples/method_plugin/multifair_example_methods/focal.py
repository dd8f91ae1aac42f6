"""A focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017) as a fairness method.

With ``p_i = exp(-l_i)`` the probability the model gives sample i's true class, the loss is
``mean_i (1 - p_i)^gamma l_i``: confidently right samples weigh little, hard ones (often those of the
groups the model serves worst) weigh more. ``group_balance`` additionally divides each sample by its
group's share of the batch, so every group present counts equally.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from monai_multifair.methods import LossWeightingMethod, MethodContext, SampleWeighting


@dataclass
class FocalOptions:
    """Options of ``example-focal`` (YAML ``method.options``).

    Attributes:
        gamma: focusing exponent, >= 0 (0 is the cross-entropy).
        group_balance: weigh the groups of a batch equally.
    """

    gamma: float = 2.0
    group_balance: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, (int, float)) or self.gamma < 0:
            raise ValueError(f"expected `gamma` >= 0, got {self.gamma!r}")


class FocalWeighting(SampleWeighting):
    """``mean_i (1 - exp(-l_i))^gamma l_i`` (optionally group-balanced), on the device."""

    def __init__(self, gamma: float, group_balance: bool, num_groups: int) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.group_balance = group_balance
        self.num_groups = num_groups
        self.register_buffer("last_mean_weight", torch.zeros(()))

    def forward(self, losses: Tensor, labels: Tensor, groups: Tensor) -> Tensor:
        losses = losses.float()
        weight = (1 - torch.exp(-losses.detach())).clamp_min(0) ** self.gamma
        if self.group_balance:
            ones = torch.ones_like(weight)
            counts = torch.zeros(self.num_groups, device=weight.device).index_add(0, groups, ones)
            present = (counts > 0).sum()
            weight = weight * groups.numel() / (present * counts[groups])
        self.last_mean_weight.copy_(weight.mean())
        return (weight * losses).mean()

    def statistics(self) -> dict[str, Tensor]:
        return {"mean_weight": self.last_mean_weight}


class FocalLoss(LossWeightingMethod):
    """The method object the engine drives: one ``SampleWeightingHandler`` with :class:`FocalWeighting`."""

    name = "example-focal"
    metric_prefix = "focal/"

    def __init__(self, options: FocalOptions | None = None) -> None:
        super().__init__(options or FocalOptions())

    def build_weighting(self, context: MethodContext) -> SampleWeighting:
        return FocalWeighting(self.options.gamma, self.options.group_balance, context.num_groups)

    def describe(self) -> str:
        return f"focal loss (gamma {self.options.gamma:g})"
