"""``reweighting``: loss weights by inverse frequency of the group, or of the (group, label) cell.

The "RWG" / "RWY"-style data balancing of Idrissi et al., "Simple data balancing achieves competitive
worst-group-accuracy" (CLeaR 2022), also among MEDFAIR's baselines (Zong et al., ICLR 2023). With
``n_k`` training samples in cell ``k`` (``K`` cells with samples, ``N`` samples in all), a sample of
cell ``k`` weighs ``w_k = N / (K n_k)``: every cell contributes equally to the loss, and the weights
average 1 over the training split, so the loss keeps the scale of the plain cross-entropy. The loss of
a batch is ``mean_i w_{k(i)} l_i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from monai_multifair.errors import MultiFairError
from monai_multifair.methods.base import (
    LossWeightingMethod,
    MethodContext,
    SampleWeighting,
    cell_counts,
    cell_ids,
    cells_search_space,
)
from monai_multifair.plugins.hookspecs import hookimpl
from monai_multifair.plugins.method_spec import MethodSpec

__all__ = [
    "REWEIGHTING_SPEC",
    "InverseFrequencyWeighting",
    "Reweighting",
    "ReweightingOptions",
    "inverse_frequency",
]


@dataclass
class ReweightingOptions:
    """Options of ``reweighting``.

    Attributes:
        by: ``"group"`` (weights per group) or ``"group_label"`` (per group and class label).
    """

    by: Literal["group", "group_label"] = "group"


def inverse_frequency(counts: Tensor) -> Tensor:
    """``w_k = N / (K n_k)`` for cells with ``n_k > 0`` (``K`` such cells), 0 for empty cells.

    Example:
        >>> inverse_frequency(torch.tensor([6.0, 3.0, 0.0, 1.0])).tolist()
        [0.5555555555555556, 1.1111111111111112, 0.0, 3.3333333333333335]
    """
    present = counts > 0
    if not bool(present.any()):
        raise MultiFairError("expected at least one training sample to reweight, got none")
    total, cells = counts.sum(), present.sum()
    return torch.where(present, total / (cells * counts.clamp_min(1)), torch.zeros_like(counts))


class InverseFrequencyWeighting(SampleWeighting):
    """``mean_i w[cell_i] l_i`` with a fixed table of cell weights (see :func:`inverse_frequency`).

    Args:
        weights: ``[cells]`` weight of each cell.
        by: how cells are formed (see :func:`~monai_multifair.methods.base.cell_ids`).
        num_classes: ``C``.
    """

    def __init__(self, weights: Tensor, by: str, num_classes: int) -> None:
        super().__init__()
        self.by = by
        self.num_classes = num_classes
        self.register_buffer("weights", weights.float())

    def forward(self, losses: Tensor, labels: Tensor, groups: Tensor) -> Tensor:
        w = self.weights[cell_ids(labels, groups, self.by, self.num_classes)]
        return (w * losses).mean()

    def statistics(self) -> dict[str, Tensor]:
        return {"weight": self.weights}


class Reweighting(LossWeightingMethod):
    """Inverse-frequency loss weights, fixed from the training split's counts."""

    name = "reweighting"
    metric_prefix = "reweighting/"

    def __init__(self, options: ReweightingOptions | None = None) -> None:
        super().__init__(options or ReweightingOptions())

    def build_weighting(self, context: MethodContext) -> SampleWeighting:
        weights = inverse_frequency(cell_counts(context, self.options.by))
        return InverseFrequencyWeighting(weights, self.options.by, context.num_classes)

    def describe(self) -> str:
        return f"reweighting (by {self.options.by.replace('_', ' x ')})"


REWEIGHTING_SPEC = MethodSpec(
    name="reweighting",
    factory=Reweighting,
    options=ReweightingOptions,
    description="loss weights by inverse frequency of the group or (group, label) (Idrissi et al., CLeaR 2022)",
    search_space=cells_search_space,
)


@hookimpl
def multifair_methods() -> list[MethodSpec]:
    """This module's method, registered as a built-in plugin (``monai_multifair.plugins.builtin``)."""
    return [REWEIGHTING_SPEC]
