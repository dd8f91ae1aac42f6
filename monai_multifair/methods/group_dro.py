"""``groupdro``: online group distributionally robust optimisation (Sagawa et al., "Distributionally Robust
Neural Networks for Group Shifts", ICLR 2020, Algorithm 1; their code ``kohpangwei/group_DRO``, ``loss.py``).

Weights ``q`` over the cells (groups, or group x label cells) start uniform. At each step, with
``L_k`` the mean loss of cell ``k`` in the batch (0 for a cell absent from it, as in their code) and
``n_k`` its training count:

    q_k <- q_k * exp(eta * (L_k + C / sqrt(n_k)))        then q <- q / sum_k q_k
    loss = sum_k q_k L_k

A cell with no training sample (``n_k = 0``) can never be in a batch: its weight is 0 from the start
and stays 0 (the multiplicative update keeps it there), and the others start uniform. Their code starts
such a cell at ``1 / K`` and divides ``C`` by ``sqrt(0)``, which makes every weight NaN when ``C > 0``;
clamping ``n_k`` to 1 instead would hand the empty cell the full adjustment ``C`` at every step until
its weight nears 1 and the loss of the real cells vanishes. :class:`GroupDRO` logs the empty cells
by name.

``eta`` is the step size (``robust_step_size`` in their code, 0.01), ``C`` the generalisation
adjustment (``generalization_adjustment``; 0 switches it off). Under gradient accumulation every
micro-batch is one step of ``q``. Under ``torch.distributed`` the cell sums and counts are all-reduced, so
``q`` is identical on every rank and the DDP-averaged gradient equals the gradient of the concatenated
batch. Everything stays on the device.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from monai_multifair.config.validation import check
from monai_multifair.core.distributed import world_size
from monai_multifair.errors import MultiFairError
from monai_multifair.methods.base import (
    LossWeightingMethod,
    MethodContext,
    SampleWeighting,
    all_reduce_sum,
    cell_counts,
    cell_ids,
    cell_names,
)
from monai_multifair.plugins.hookspecs import hookimpl
from monai_multifair.plugins.method_spec import MethodSpec

__all__ = ["GROUPDRO_SPEC", "GroupDRO", "GroupDROOptions", "GroupDROWeighting"]

logger = logging.getLogger(__name__)


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
        train_counts: ``[K]`` training counts ``n_k`` (for the adjustment); a cell with ``n_k = 0`` has
            weight 0 throughout. At least one count must be > 0.
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
        train_counts = torch.as_tensor(train_counts, dtype=torch.float64).cpu()
        if train_counts.shape != (num_cells,):
            raise MultiFairError(
                f"expected `train_counts` of shape ({num_cells},) (one count per cell), "
                f"got {tuple(train_counts.shape)}"
            )
        if bool((train_counts < 0).any()) or not bool(torch.isfinite(train_counts).all()):
            raise MultiFairError(f"expected `train_counts` finite and >= 0, got {train_counts.tolist()}")
        present = train_counts > 0
        if not bool(present.any()):
            raise MultiFairError(
                "expected at least one cell with training samples in `train_counts`, got none"
            )
        # an empty cell: no adjustment (instead of C / sqrt(0)) and weight 0 from the start
        adjust = torch.where(
            present, adjustment / train_counts.clamp_min(1).sqrt(), torch.zeros_like(train_counts)
        )
        self.register_buffer("adjustment", adjust.float())
        self.register_buffer("q", (present.double() / present.sum()).float())
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
        empty = [name for name, n in zip(cell_names(context, self.options.by), counts.tolist()) if n == 0]
        if empty:
            logger.warning(
                "groupdro: the training split has no sample of cell(s) %s; their weight is 0",
                ", ".join(empty),
            )
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


@hookimpl
def multifair_methods() -> list[MethodSpec]:
    """This module's method, registered as a built-in plugin (``monai_multifair.plugins.builtin``)."""
    return [GROUPDRO_SPEC]
