"""Model selection on validation: the selection score an evaluator writes, and the runner that validates
every ``val_interval`` epochs and remembers the best epoch."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["SelectionScore", "ValidationRunner"]


class SelectionScore:
    """At the evaluator's ``EPOCH_COMPLETED`` (after ``FairnessEvaluationHandler``): ``metrics[name]``
    copied to ``metrics["selection_score"]``, an undefined (NaN) value as ``-inf`` so that any
    defined value ranks above it."""

    KEY = "selection_score"

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        value = float(engine.state.metrics[self.metric])
        engine.state.metrics[self.KEY] = value if math.isfinite(value) else -math.inf


class ValidationRunner:
    """At the trainer's ``EPOCH_COMPLETED`` every ``interval`` epochs and at the last epoch: run the
    evaluator (whose handlers compute the fairness metrics and save the best model) and keep a row of
    its metrics per validated epoch.

    Attributes:
        history: ``[{"epoch": e, "auc": ..., "es_auc": ..., ...}]``.
        best_epoch: the epoch with the highest selection score so far (ties keep the earlier epoch, as
            the best-model ``CheckpointSaver`` does).
    """

    def __init__(self, evaluator: Engine, interval: int) -> None:
        self.evaluator = evaluator
        self.interval = interval
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.last_improved = False

    def attach(self, engine: Engine) -> None:
        def due(engine: Engine, epoch: int) -> bool:
            return epoch % self.interval == 0 or epoch == engine.state.max_epochs

        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=due), self)

    def __call__(self, engine: Engine) -> None:
        epoch = int(engine.state.epoch)
        self.evaluator.run(epoch)
        metrics = {k: float(v) for k, v in self.evaluator.state.metrics.items()}
        score = metrics.pop(SelectionScore.KEY)
        self.history.append({"epoch": epoch, **metrics})
        self.last_improved = self.best_score is None or score > self.best_score
        if self.last_improved:
            self.best_epoch, self.best_score = epoch, score

    @property
    def last(self) -> dict[str, float] | None:
        """The metrics of the latest validated epoch."""
        return self.history[-1] if self.history else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [dict(r) for r in self.history],
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [dict(r) for r in state["history"]]
        self.best_epoch = state["best_epoch"]
        self.best_score = state["best_score"]
