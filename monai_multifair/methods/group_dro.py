"""``groupdro``: online group distributionally robust optimisation (Sagawa et al., "Distributionally Robust
Neural Networks for Group Shifts", ICLR 2020, Algorithm 1; their code ``kohpangwei/group_DRO``, ``loss.py``).

Weights ``q`` over the cells (groups, or group x label cells) start uniform. At each step, with
``L_k`` the mean loss of cell ``k`` in the batch (0 for a cell absent from it, as in their code) and
``n_k`` its training count:

    q_k <- q_k * exp(eta * (L_k + C / sqrt(n_k)))        then q <- q / sum_k q_k
    loss = sum_k q_k L_k

``eta`` is the step size (``robust_step_size`` in their code, 0.01), ``C`` the generalisation
adjustment (``generalization_adjustment``; 0 switches it off). Under gradient accumulation every
micro-batch is one step of ``q``. Under ``torch.distributed`` the cell sums and counts are all-reduced, so
``q`` is identical on every rank and the DDP-averaged gradient equals the gradient of the concatenated
batch. Everything stays on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from monai_multifair.config.validation import check
from monai_multifair.core.distributed import world_size
from monai_multifair.methods.base import (
    LossWeightingMethod,
    MethodContext,
    SampleWeighting,
    all_reduce_sum,
    cell_counts,
    cell_ids,
)
from monai_multifair.plugins.method_spec import MethodSpec

__all__ = ["GROUPDRO_SPEC", "GroupDRO", "GroupDROOptions", "GroupDROWeighting"]


@dataclass
class GroupDROOptions:
    """Options of ``groupdro``.

    Attributes:
        eta: step size of the exponentiated-gradient update of the cell weights, > 0.
        generalization_adjustment: ``C`` of the ``C / sqrt(n_k)`` adjustment, >= 0 (0: none).
        by: ``"group"`` or ``"group_label"`` (Sagawa et al. use group x label cells).
    """

    eta: float = field(default=0.01, metadata=check(lambda v: v > 0, "a number > 0"))
    generalization_adjustment: float = field(default=0.0, metadata=check(lambda v: v >= 0, "a number >= 0"))
    by: Literal["group", "group_label"] = "group"


class GroupDROWeighting(SampleWeighting):
    """The online GroupDRO loss (see the module docstring).

    Args:
        num_cells: number of cells ``K``.
        train_counts: ``[K]`` training counts ``n_k`` (for the adjustment).
        eta: step size.
        adjustment: ``C``.
        by: how cells are formed from labels and groups.
        num_classes: ``C`` classes.
        process_group: ``torch.distributed`` group to reduce over (default the world, when initialised).
    """

    def __init__(
        self,
        num_cells: int,
        train_counts: Tensor,
        eta: float,
        adjustment: float,
        by: str,
        num_classes: int,
        process_group: Any | None = None,
    ) -> None:
        super().__init__(process_group)
        self.num_cells = num_cells
        self.eta = float(eta)
        self.by = by
        self.num_classes = num_classes
        adjust = adjustment / train_counts.clamp_min(1).sqrt() if adjustment > 0 else torch.zeros(num_cells)
        self.register_buffer("adjustment", adjust.float())
        self.register_buffer("q", torch.full((num_cells,), 1.0 / num_cells))
        self.register_buffer("last_cell_loss", torch.zeros(num_cells))

    def forward(self, losses: Tensor, labels: Tensor, groups: Tensor) -> Tensor:
        cells = cell_ids(labels, groups, self.by, self.num_classes)
        losses = losses.float()
        zeros = torch.zeros(self.num_cells, device=losses.device)
        sums = zeros.index_add(0, cells, losses.detach())
        counts = zeros.index_add(0, cells, torch.ones_like(losses))
        reduced = all_reduce_sum(torch.stack([sums, counts]), self.process_group)
        sums, counts = reduced[0], reduced[1]
        cell_loss = sums / counts.clamp_min(1)
        q = self.q * torch.exp(self.eta * (cell_loss + self.adjustment))
        q = q / q.sum()
        self.q.copy_(q)
        self.last_cell_loss.copy_(cell_loss)
        # loss = sum_k q_k L_k = sum_i q_{k(i)} / n_k(batch) * l_i; each rank holds its share of the
        # samples and DDP averages the ranks' gradients, hence the world-size factor.
        sample_weight = (q / counts.clamp_min(1))[cells] * world_size(self.process_group)
        return (sample_weight * losses).sum()

    def statistics(self) -> dict[str, Tensor]:
        return {"weight": self.q, "cell_loss": self.last_cell_loss}


class GroupDRO(LossWeightingMethod):
    """Online GroupDRO over groups or group x label cells."""

    name = "groupdro"
    metric_prefix = "groupdro/"

    def __init__(self, options: GroupDROOptions | None = None) -> None:
        super().__init__(options or GroupDROOptions())

    def build_weighting(self, context: MethodContext) -> SampleWeighting:
        counts = cell_counts(context, self.options.by)
        return GroupDROWeighting(
            counts.numel(),
            counts,
            self.options.eta,
            self.options.generalization_adjustment,
            self.options.by,
            context.num_classes,
            context.process_group,
        )

    def describe(self) -> str:
        return f"GroupDRO (eta {self.options.eta:g})"


def _search_space(trial: Any) -> dict[str, Any]:
    return {
        "eta": trial.suggest_float("eta", 1e-3, 1.0, log=True),
        "generalization_adjustment": trial.suggest_float("generalization_adjustment", 0.0, 4.0),
        "by": trial.suggest_categorical("by", ["group", "group_label"]),
    }


GROUPDRO_SPEC = MethodSpec(
    name="groupdro",
    factory=GroupDRO,
    options=GroupDROOptions,
    description="online group DRO: exponentiated-gradient weights over group losses (Sagawa et al., ICLR 2020)",
    search_space=_search_space,
)
