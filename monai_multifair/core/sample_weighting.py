"""``SampleWeighting``: the framework-free torch module behind the loss-weighting fairness methods.

It sits below both its users: the MONAI adapter
(:class:`~monai_multifair.handlers.SampleWeightingHandler`) and the training methods built on it
(:class:`~monai_multifair.methods.LossWeightingMethod`); users import it as
``monai_multifair.methods.SampleWeighting``.
"""

from __future__ import annotations

import abc
from typing import Any

from torch import Tensor, nn

__all__ = ["SampleWeighting"]


class SampleWeighting(nn.Module, abc.ABC):
    """Turns the per-sample losses of a batch into the loss to back-propagate (framework-free torch).

    ``forward(losses, labels, groups)`` with ``losses [B]`` (with gradient), ``labels [B]`` and
    ``groups [B]`` long ids returns a scalar. State lives in buffers (``state_dict`` for free).
    Implementations stay on the device (no host synchronisation) and, under ``torch.distributed``,
    reduce what they need over the ranks so every rank holds identical state and the DDP-averaged
    gradient equals the one of the concatenated batch.
    """

    def __init__(self, process_group: Any | None = None) -> None:
        super().__init__()
        self.process_group = process_group

    @abc.abstractmethod
    def forward(self, losses: Tensor, labels: Tensor, groups: Tensor) -> Tensor: ...

    def statistics(self) -> dict[str, Tensor]:
        """Device tensors to publish (e.g. the group weights), keyed by name."""
        return {}
