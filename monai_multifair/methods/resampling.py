"""``resampling``: group-balanced (or group x label balanced) sampling of the training split.

The "SUBG"-style balancing by sampling of Idrissi et al., "Simple data balancing achieves competitive
worst-group-accuracy" (CLeaR 2022), drawn with replacement as in MEDFAIR's resampling baseline (Zong et
al., ICLR 2023): each epoch draws ``N`` training samples with probability proportional to
``1 / n_{k(i)}``, so every cell (group, or group and label) is drawn equally often in expectation. The
draw is a function of ``(seed, epoch)`` alone, identical on every rank; under ``torch.distributed``
each rank takes its strided share of it (see :class:`~monai_multifair.engine.EpochSampler`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from monai_multifair.methods.base import FairnessMethod, cell_counts, cell_ids, cells_search_space
from monai_multifair.plugins.hookspecs import hookimpl
from monai_multifair.plugins.method_spec import MethodSpec

__all__ = ["RESAMPLING_SPEC", "Resampling", "ResamplingOptions", "balanced_sampling_weights"]


@dataclass
class ResamplingOptions:
    """Options of ``resampling``.

    Attributes:
        by: ``"group"`` (balance groups) or ``"group_label"`` (balance group x label cells).
    """

    by: Literal["group", "group_label"] = "group"


def balanced_sampling_weights(cells: Tensor, counts: Tensor) -> Tensor:
    """``[N]`` draw weights ``1 / n_{cell_i}`` (each cell's weights sum to 1).

    Example:
        >>> balanced_sampling_weights(torch.tensor([0, 0, 1]), torch.tensor([2.0, 1.0])).tolist()
        [0.5, 0.5, 1.0]
    """
    return 1.0 / counts[cells]


class Resampling(FairnessMethod):
    """Balanced sampling with replacement; the loss and gradients are untouched."""

    name = "resampling"

    def __init__(self, options: ResamplingOptions | None = None) -> None:
        super().__init__(options or ResamplingOptions())

    def sampling_weights(self) -> Tensor:
        context = self._require_context()
        cells = cell_ids(context.train_labels, context.train_groups, self.options.by, context.num_classes)
        return balanced_sampling_weights(cells, cell_counts(context, self.options.by))

    def describe(self) -> str:
        return f"resampling (balanced by {self.options.by.replace('_', ' x ')})"


RESAMPLING_SPEC = MethodSpec(
    name="resampling",
    factory=Resampling,
    options=ResamplingOptions,
    description="group- or group x label-balanced sampling with replacement (Idrissi et al., CLeaR 2022)",
    search_space=cells_search_space,
)


@hookimpl
def multifair_methods() -> list[MethodSpec]:
    """This module's method, registered as a built-in plugin (``monai_multifair.plugins.builtin``)."""
    return [RESAMPLING_SPEC]
