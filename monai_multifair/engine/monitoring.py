"""Watching a run: the training loss and method statistics every few iterations, the progress bar and epoch
lines, and the prediction collector of an evaluation pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
from monai.utils.enums import CommonKeys as Keys

from monai_multifair.core.distributed import world_size
from monai_multifair.engine.selection import ValidationRunner

__all__ = ["PredictionCollector", "ProgressReporter", "TrainingMonitor"]


def _rank_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over the ranks (itself in one process): every rank records the same loss."""
    if world_size() == 1:
        return value
    out = value.detach().clone()
    torch.distributed.all_reduce(out)
    return out / world_size()


class TrainingMonitor:
    """Training loss and MultiFair statistics every ``interval`` iterations and at each epoch end.

    The loss (``engine.state.output[Keys.LOSS]``, the task loss plus MultiFair's auxiliary terms) is
    summed on the device each iteration and read on the host only when a row is recorded (averaged over
    the ranks under ``torch.distributed``, so every rank records the global mean). A row holds
    ``step`` (global iteration), ``epoch``, ``loss`` (mean since the previous row) and every
    ``engine.state.metrics`` entry starting with ``prefix`` (the ``MultiFairHandler`` statistics,
    published just before on the same events), named without the prefix.
    """

    def __init__(self, interval: int, prefix: str = "multifair/") -> None:
        self.interval = interval
        self.prefix = prefix
        self.rows: list[dict[str, Any]] = []
        self.epoch_loss: dict[int, float] = {}
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._epoch_sum: torch.Tensor | None = None
        self._epoch_count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.accumulate)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self.record)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def accumulate(self, engine: Engine) -> None:
        loss = engine.state.output[Keys.LOSS].detach().float()
        self._sum = loss if self._sum is None else self._sum + loss
        self._epoch_sum = loss if self._epoch_sum is None else self._epoch_sum + loss
        self._count += 1
        self._epoch_count += 1

    def record(self, engine: Engine) -> None:
        if self._count == 0:
            return
        row: dict[str, Any] = {
            "step": int(engine.state.iteration),
            "epoch": int(engine.state.epoch),
            "loss": float(_rank_mean(self._sum)) / self._count,
        }
        for name, value in engine.state.metrics.items():
            if name.startswith(self.prefix):
                row[name[len(self.prefix) :]] = float(value)
        self.rows.append(row)
        self._sum, self._count = None, 0

    def epoch_completed(self, engine: Engine) -> None:
        self.record(engine)
        if self._epoch_count:
            self.epoch_loss[int(engine.state.epoch)] = float(_rank_mean(self._epoch_sum)) / self._epoch_count
        self._epoch_sum, self._epoch_count = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "rows": [dict(r) for r in self.rows],
            "epoch_loss": {str(k): v for k, v in self.epoch_loss.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]
        self.epoch_loss = {int(k): float(v) for k, v in state["epoch_loss"].items()}


class ProgressReporter:
    """A tqdm bar over the training iterations and one line per epoch (loss, validation metrics).

    Args:
        monitor: gives the epoch's mean loss.
        validation: gives the epoch's validation metrics.
        selection_metric: the metric named in the line's ``(best)`` mark.
        progress: show the bar (on stderr).
        log: receives each epoch's line when given (printed above the bar when it is shown).
    """

    def __init__(
        self,
        monitor: TrainingMonitor,
        validation: ValidationRunner,
        selection_metric: str,
        progress: bool,
        log: Callable[[str], None] | None = None,
        description: str = "train",
    ) -> None:
        self.monitor = monitor
        self.validation = validation
        self.selection_metric = selection_metric
        self.progress = progress
        self.log = log
        self.description = description
        self.bar: Any = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        if self.progress:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def started(self, engine: Engine) -> None:
        if not self.progress:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=engine.state.max_epochs * engine.state.epoch_length,
            initial=engine.state.iteration,
            desc=self.description,
            unit="it",
            dynamic_ncols=True,
            leave=False,
        )

    def iteration_completed(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch_completed(self, engine: Engine) -> None:
        epoch, max_epochs = int(engine.state.epoch), int(engine.state.max_epochs)
        parts = [f"epoch {epoch}/{max_epochs}"]
        loss = self.monitor.epoch_loss.get(epoch)
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        last = self.validation.last
        if last is not None and int(last["epoch"]) == epoch:
            parts.append(
                "val "
                + "  ".join(
                    f"{name} {last[name]:.4f}"
                    for name in ("auc", "es_auc", "worst_group_auc")
                    if name in last
                )
            )
            if self.validation.last_improved:
                parts.append(f"(best {self.selection_metric})")
        line = "  ".join(parts)
        if self.bar is not None:
            self.bar.set_postfix_str(line, refresh=False)
            if self.log is not None:
                with self.bar.external_write_mode():
                    self.log(line)
        elif self.log is not None:
            self.log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class PredictionCollector:
    """At an evaluator's ``FORWARD_COMPLETED``: keep class probabilities, labels, groups and ids."""

    def __init__(self) -> None:
        self.probabilities: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.groups: list[torch.Tensor] = []
        self.ids: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        pred = engine.state.output[Keys.PRED].detach().float()
        batch = engine.state.batch
        self.probabilities.append(torch.softmax(pred, dim=1))
        self.labels.append(torch.as_tensor(batch["label"]).reshape(-1))
        self.groups.append(torch.as_tensor(batch["group"]).reshape(-1))
        self.ids.extend(str(i) for i in batch["id"])

    def arrays(self) -> tuple[Any, Any, Any, list[str]]:
        """``(probabilities [N, C], labels [N], groups [N], ids)`` as numpy arrays (one host transfer each)."""
        return (
            torch.cat(self.probabilities).cpu().double().numpy(),
            torch.cat(self.labels).cpu().numpy(),
            torch.cat(self.groups).cpu().numpy(),
            list(self.ids),
        )
