"""``SampleWeightingHandler``: a loss-weighting fairness method inside a MONAI ``SupervisedTrainer`` iteration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import
from monai.utils.enums import CommonKeys as Keys
from torch import Tensor

from monai_multifair.core.sample_weighting import SampleWeighting
from monai_multifair.errors import MultiFairError
from monai_multifair.handlers._utils import (
    batch_ids,
    iteration_logits,
    named_statistics,
    register_iteration_event,
)

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["SampleWeightingHandler"]


def _per_sample_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.float(), labels, reduction="none")


class SampleWeightingHandler:
    """Replaces the trainer's loss by a weighting of the per-sample losses (reweighting, GroupDRO, FIS).

    At ``IterationEvents.LOSS_COMPLETED`` (after MONAI computed the loss, before its backward) it computes
    the per-sample loss ``l_i`` of ``engine.state.output[Keys.PRED]`` (logits ``[B, C]``; cross-entropy
    in float32 by default) and sets ``engine.state.output[Keys.LOSS] = weighting(l, y, a)``. MONAI then
    back-propagates that value (divided by ``accumulation_steps`` under gradient accumulation, and scaled
    by its ``GradScaler`` under AMP: both commute with the weighting). The trainer's own loss value is
    replaced, so use the same loss for both (the engine's trainers use cross-entropy).

    Every ``stats_interval`` iterations and at each epoch end the weighting's statistics are written to
    ``engine.state.metrics`` as ``{metric_prefix}{name}/{cell}`` floats (one host transfer); nothing else
    reads the device during a step.

    Events and ``engine.state`` keys: reads ``output[Keys.PRED]``, ``batch[label_key]``,
    ``batch[group_key]``; writes ``output[Keys.LOSS]`` and ``metrics``.

    Args:
        weighting: a :class:`~monai_multifair.methods.SampleWeighting` (its state is this handler's state).
        group_key: batch key of the group ids ``[B]``.
        label_key: batch key of the class labels ``[B]`` (or ``[B, 1]``).
        cell_names: display names of the entries of the weighting's statistics (groups, or
            ``group/label`` cells).
        stats_interval: publish the statistics every this many iterations.
        metric_prefix: prefix of the published metric names.
        loss_function: ``loss_function(logits, labels) -> [B]`` per-sample losses (default cross-entropy).
    """

    def __init__(
        self,
        weighting: SampleWeighting,
        group_key: str = "group",
        label_key: str = "label",
        cell_names: Sequence[str] | None = None,
        stats_interval: int = 50,
        metric_prefix: str = "method/",
        loss_function: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        if not isinstance(weighting, torch.nn.Module) or not callable(weighting):
            raise MultiFairError(
                f"expected `weighting` to be a SampleWeighting module, got {type(weighting).__name__}"
            )
        if isinstance(stats_interval, bool) or not isinstance(stats_interval, int) or stats_interval < 1:
            raise MultiFairError(f"expected `stats_interval` to be an integer >= 1, got {stats_interval!r}")
        for arg, value in (
            ("group_key", group_key),
            ("label_key", label_key),
            ("metric_prefix", metric_prefix),
        ):
            if not isinstance(value, str):
                raise MultiFairError(f"expected `{arg}` to be a string, got {value!r}")
        self.weighting = weighting
        self.group_key = group_key
        self.label_key = label_key
        self.cell_names = tuple(str(c) for c in cell_names) if cell_names is not None else None
        self.stats_interval = stats_interval
        self.metric_prefix = metric_prefix
        self.loss_function = loss_function or _per_sample_cross_entropy

    def attach(self, engine: Engine) -> None:
        """Register on ``engine`` (idempotent)."""
        if not register_iteration_event(
            engine,
            IterationEvents.LOSS_COMPLETED,
            self.iteration_loss,
            "SampleWeightingHandler",
            "SupervisedTrainer",
        ):
            return
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.stats_interval), self.publish_stats)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.publish_stats)

    def iteration_loss(self, engine: Engine) -> None:
        """At ``LOSS_COMPLETED``: replace ``output[Keys.LOSS]`` by the weighted loss."""
        output = engine.state.output
        pred = iteration_logits(engine)
        size = pred.shape[0]
        labels = batch_ids(engine.state.batch, self.label_key, "label_key", size, pred.device)
        groups = batch_ids(engine.state.batch, self.group_key, "group_key", size, pred.device)
        loss = self.weighting(self.loss_function(pred, labels), labels, groups)
        output[Keys.LOSS] = loss.to(output[Keys.LOSS].dtype)

    def metrics(self) -> dict[str, float]:
        """The weighting's statistics as ``{name: float}`` (one host transfer)."""
        cells, stats = self.cell_names, self.weighting.statistics()

        def labels(key: str, count: int) -> list[str]:
            if count == 1 and stats[key].dim() == 0:
                return [""]
            if cells is not None and count == len(cells):
                return list(cells)
            return [str(i) for i in range(count)]

        return named_statistics(stats, labels, self.metric_prefix)

    def publish_stats(self, engine: Engine) -> None:
        """Write :meth:`metrics` into ``engine.state.metrics``."""
        engine.state.metrics.update(self.metrics())

    def state_dict(self) -> dict[str, Any]:
        """The weighting's buffers."""
        return self.weighting.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.weighting.load_state_dict(state)
