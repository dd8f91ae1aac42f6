"""Ignite handlers of the run engine: statistics, validation and model selection, clipping, progress.

Each handler with state implements ``state_dict()`` / ``load_state_dict()`` so that the run's last
checkpoint resumes it exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import
from monai.utils.enums import CommonKeys as Keys

from monai_multifair.engine.loaders import set_loader_epoch

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "CHECKPOINT_PATTERN",
    "EpochShuffle",
    "GradientClipper",
    "LastCheckpointPruner",
    "PredictionCollector",
    "ProgressReporter",
    "RNGState",
    "SaverState",
    "ScalerState",
    "SelectionRecord",
    "SelectionScore",
    "TrainingMonitor",
    "ValidationRunner",
    "checkpoint_epoch",
]

#: File names of the per-epoch ("last") checkpoints written by ``CheckpointSaver``.
CHECKPOINT_PATTERN = re.compile(r"^checkpoint_epoch=(\d+)\.pt$")


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch in a ``checkpoint_epoch=N.pt`` file name, else ``None``."""
    match = CHECKPOINT_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


class EpochShuffle:
    """At ``EPOCH_STARTED``: select the epoch's shuffling in the training loader (before it is iterated)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        set_loader_epoch(self.loader, engine.state.epoch)


class TrainingMonitor:
    """Training loss and MultiFair statistics every ``interval`` iterations and at each epoch end.

    The loss (``engine.state.output[Keys.LOSS]``, the task loss plus MultiFair's auxiliary terms) is
    summed on the device each iteration and read on the host only when a row is recorded. A row holds
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
            "loss": float(self._sum) / self._count,
        }
        for name, value in engine.state.metrics.items():
            if name.startswith(self.prefix):
                row[name[len(self.prefix) :]] = float(value)
        self.rows.append(row)
        self._sum, self._count = None, 0

    def epoch_completed(self, engine: Engine) -> None:
        self.record(engine)
        if self._epoch_count:
            self.epoch_loss[int(engine.state.epoch)] = float(self._epoch_sum) / self._epoch_count
        self._epoch_sum, self._epoch_count = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "rows": [dict(r) for r in self.rows],
            "epoch_loss": {str(k): v for k, v in self.epoch_loss.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]
        self.epoch_loss = {int(k): float(v) for k, v in state["epoch_loss"].items()}


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


class SelectionRecord:
    """Saved with the best model: the epoch and validation metrics it was selected at."""

    def __init__(self, evaluator: Engine, metric: str) -> None:
        self.evaluator = evaluator
        self.metric = metric
        self.loaded: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        metrics = {k: float(v) for k, v in self.evaluator.state.metrics.items() if k != SelectionScore.KEY}
        return {"epoch": int(self.evaluator.state.epoch), "metric": self.metric, "validation": metrics}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loaded = dict(state)


class SaverState:
    """The best-model ``CheckpointSaver``'s tracking list as a checkpointable object.

    MONAI's ``CheckpointSaver`` restores the list with ``load_state_dict`` but offers no
    ``state_dict``; the list is read from the ignite ``Checkpoint`` it wraps.
    """

    def __init__(self, saver: Any) -> None:
        self.saver = saver

    def state_dict(self) -> dict[str, Any]:
        return dict(self.saver._key_metric_checkpoint.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saver.load_state_dict(state)


class RNGState:
    """The global torch random state (CPU and CUDA): dropout masks continue exactly after a resume."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # a checkpoint loaded with map_location=cuda holds the states on the GPU; torch wants CPU bytes
        torch.set_rng_state(state["cpu"].cpu())
        cuda = state.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


class ScalerState:
    """The CUDA AMP grad scaler of a MONAI trainer as a checkpointable object.

    ``SupervisedTrainer.run`` creates its ``GradScaler`` anew right before ``Events.STARTED``, so the
    scaler is looked up on the trainer when the checkpoint is written (epoch end) and read (start).
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        scaler = getattr(self.trainer, "scaler", None)
        return dict(scaler.state_dict()) if scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        scaler = getattr(self.trainer, "scaler", None)
        if scaler is not None and state:
            scaler.load_state_dict(state)


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


class LastCheckpointPruner:
    """After the per-epoch ``CheckpointSaver``: delete older ``checkpoint_epoch=N.pt`` files.

    The saver keeps one file itself, but not across a resume (a new saver does not know the files of
    the interrupted process).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        current = int(engine.state.epoch)
        for path in self.directory.glob("checkpoint_epoch=*.pt"):
            epoch = checkpoint_epoch(path)
            if epoch is not None and epoch < current:
                path.unlink()


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
