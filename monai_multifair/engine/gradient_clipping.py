"""``GradientClipper``: global gradient-norm clipping inside a MONAI ``SupervisedTrainer`` step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
from monai.engines.utils import IterationEvents

__all__ = ["GradientClipper"]


class GradientClipper:
    """At ``BACKWARD_COMPLETED`` of optimizer-step iterations: clip the global gradient norm.

    With MONAI's AMP grad scaler the gradients are unscaled first (``scaler.unscale_``, once per step);
    with gradient accumulation only the iteration that steps the optimizer clips (the same rule as
    ``SupervisedTrainer``).
    """

    def __init__(self, max_norm: float, accumulation_steps: int = 1) -> None:
        self.max_norm = float(max_norm)
        self.accumulation_steps = accumulation_steps
        self._params: list[torch.Tensor] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        acc = self.accumulation_steps
        if acc > 1:
            local = (engine.state.iteration - 1) % engine.state.epoch_length
            if not ((local + 1) % acc == 0 or local + 1 == engine.state.epoch_length):
                return
        if self._params is None:
            self._params = [p for group in engine.optimizer.param_groups for p in group["params"]]
        scaler = getattr(engine, "scaler", None)
        if engine.amp and scaler is not None:
            scaler.unscale_(engine.optimizer)
        torch.nn.utils.clip_grad_norm_(self._params, self.max_norm)
