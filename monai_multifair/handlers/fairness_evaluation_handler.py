"""``FairnessEvaluationHandler``: the field's fairness metrics for a MONAI ``SupervisedEvaluator``."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, evenly_divisible_all_gather, min_version, optional_import
from monai.utils.enums import CommonKeys as Keys
from torch import Tensor

from monai_multifair._deprecation import metric_label, renamed_keyword
from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.handlers._utils import batch_item, register_iteration_event
from monai_multifair.metrics import (
    FairnessMetricFrame,
    UndefinedGroupMetricWarning,
    fairness_metric_frame,
    fairness_summary,
)

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
    from ignite.metrics import Metric
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
    Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric")

__all__ = ["SUMMARY_METRICS", "FairnessEvaluationHandler", "FairnessKeyMetric"]

#: Scalar metrics the handler writes (before the per-group ``group_auc/<name>`` entries).
SUMMARY_METRICS = ("auc", "es_auc", "worst_group_auc", "dpd", "deodds")
_ACTIVATIONS = ("softmax", "sigmoid", "none")


class FairnessEvaluationHandler:
    """Buffers an epoch's predictions and computes AUC, ES-AUC, worst-group AUC, DPD, DEOdds, group AUCs.

    With ``p`` the positive-class probability and ``a`` the group (``docs/howto/audit.md``;
    :mod:`monai_multifair.metrics` computes them):
    ``ES-AUC = AUC / (1 + alpha * sum_g |AUC - AUC_g|)``, worst-group AUC ``= min_g AUC_g``,
    ``DPD = max_g - min_g P(p >= t | a = g)``, ``DEOdds = max(gap of TPR_g, gap of FPR_g)``.
    Undefined values (a group with one class) are NaN, never a fair-looking number.

    Events and ``engine.state`` keys:

    - ``Events.EPOCH_STARTED``: clears the buffers.
    - ``IterationEvents.FORWARD_COMPLETED`` (fired by MONAI engines after the forward, before
      decollation and post-processing): buffers ``activation(engine.state.output[Keys.PRED])`` (the raw
      network output, ``[B, C]`` logits by default), ``engine.state.batch[label_key]`` and
      ``engine.state.batch[group_key]``, on the device.
    - ``Events.EPOCH_COMPLETED``: gathers the buffers from every rank
      (``monai.utils.evenly_divisible_all_gather``, so ranks may hold different numbers of samples;
      attach the handler on every rank), computes the metrics and writes ``engine.state.metrics``
      entries ``{prefix}auc``, ``{prefix}es_auc``, ``{prefix}worst_group_auc``, ``{prefix}dpd``,
      ``{prefix}deodds`` and ``{prefix}group_auc/<group name>``; keeps the fairlearn ``MetricFrame``
      of the epoch in :attr:`metric_frame` (AUC, accuracy, TPR, FPR, selection rate, count,
      prevalence, calibration error, by group), the scalars in :attr:`summary` (with ``degenerate``:
      the groups whose decisions at the threshold are all negative or all positive, where DPD and
      DEOdds are not to be read as fair) and the gathered labels, probabilities and groups in
      :meth:`predictions` (for :meth:`AuditReport.from_evaluator
      <monai_multifair.report.AuditReport.from_evaluator>`); with
      ``output_dir`` rank 0 writes ``{file_prefix}_epoch{N:04d}.csv`` (the frame by group plus an
      ``overall`` row) and ``.json`` (summary, group AUCs and the frame).

    To select checkpoints on a fairness metric list this handler **before** ``CheckpointSaver`` in
    ``val_handlers`` and give the saver ``key_metric_name="es_auc"`` (with the prefix), or use
    :meth:`key_metric` as the evaluator's ``key_val_metric`` (then the ordering does not matter and
    ``evaluator.state.best_metric`` tracks it).

    With ``monai.data.DistributedSampler`` use ``even_divisible=False`` for validation, otherwise the
    padded duplicate samples are counted.

    Args:
        group_key: batch key of the group ids (integers in ``[0, K)``).
        label_key: batch key of the class labels.
        num_groups: ``K``; groups without samples then appear as NaN. Default: ``len(group_labels)``, else
            the largest id seen + 1.
        group_labels: the groups' labels (e.g. a dataset's ``group_labels``), used in the frame index and
            the metric names ``group_auc/<label>`` (a ``/`` in a label becomes ``|`` there).
        threshold: operating threshold ``t`` on ``p`` for DPD and DEOdds.
        prefix: prefix of the metric names in ``engine.state.metrics``.
        output_dir: directory for the per-epoch CSV/JSON files; ``None`` writes nothing.
        positive_class: class index whose probability is ``p`` (binary tasks); for ``C > 2`` classes the
            AUCs are one-vs-rest macro averages and ``positive_class`` is the column for the rates.
        activation: ``"softmax"`` (logits ``[B, C]``), ``"sigmoid"`` (one logit ``[B]`` / ``[B, 1]``)
            or ``"none"`` (the network already returns probabilities).
        alpha: ES-AUC disparity scale.
        min_group_size: groups with fewer samples are undefined.
        file_prefix: file name prefix for ``output_dir``.
        group_names: deprecated name of ``group_labels``.

    Example:
        >>> fairness = FairnessEvaluationHandler(group_key="race", group_labels=["Asian", "Black", "White"])
        >>> evaluator = SupervisedEvaluator(..., val_handlers=[fairness, CheckpointSaver(...,
        ...     save_key_metric=True, key_metric_name="es_auc")])
        >>> fairness.metric_frame.by_group  # after a run
        >>> fairness.predictions()  # label, score, group, group_label of every evaluated sample
        >>> AuditReport.from_evaluator(fairness).to_html("audit.html")  # the full audit in one call
    """

    def __init__(
        self,
        group_key: str = "group",
        label_key: str = "label",
        num_groups: int | None = None,
        group_labels: Sequence[str] | None = None,
        threshold: float = 0.5,
        prefix: str = "",
        output_dir: str | os.PathLike | None = None,
        positive_class: int = 1,
        activation: str = "softmax",
        alpha: float = 1.0,
        min_group_size: int = 1,
        file_prefix: str = "fairness",
        group_names: Sequence[str] | None = None,
    ) -> None:
        group_labels = renamed_keyword(
            "FairnessEvaluationHandler", "group_names", "group_labels", group_names, group_labels
        )
        if num_groups is not None and (
            isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1
        ):
            raise MultiFairError(f"expected `num_groups` to be an integer >= 1, got {num_groups!r}")
        if group_labels is not None:
            if isinstance(group_labels, str) or len(group_labels) == 0:
                raise MultiFairError(
                    f"expected `group_labels` to be a non-empty list of labels, got {group_labels!r}"
                )
            if num_groups is not None and len(group_labels) != num_groups:
                raise MultiFairError(
                    f"expected `group_labels` to have num_groups={num_groups} entries, got {len(group_labels)}"
                )
            if len(set(map(str, group_labels))) != len(group_labels):
                raise MultiFairError(f"expected distinct `group_labels`, got {list(group_labels)}")
        if activation not in _ACTIVATIONS:
            raise MultiFairError(
                f"unknown `activation` {activation!r}; known: {', '.join(_ACTIVATIONS)}"
                + close_match_hint(activation, _ACTIVATIONS)
            )
        if isinstance(positive_class, bool) or not isinstance(positive_class, int) or positive_class < 0:
            raise MultiFairError(f"expected `positive_class` to be an integer >= 0, got {positive_class!r}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise MultiFairError(f"expected `threshold` in [0, 1], got {threshold!r}")
        self.group_key = group_key
        self.label_key = label_key
        self.num_groups = num_groups
        self.group_labels = tuple(str(g) for g in group_labels) if group_labels is not None else None
        self.threshold = float(threshold)
        self.prefix = prefix
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.positive_class = positive_class
        self.activation = activation
        self.alpha = float(alpha)
        self.min_group_size = min_group_size
        self.file_prefix = file_prefix
        self._metric_frame: FairnessMetricFrame | None = None
        self._frame_inputs: tuple[Any, ...] | None = None
        self._predictions: pd.DataFrame | None = None
        self.summary: dict[str, Any] | None = None
        self._scores: list[Tensor] = []
        self._labels: list[Tensor] = []
        self._groups: list[Tensor] = []
        self._result: dict[str, float] | None = None

    # ------------------------------------------------------------------ engine
    def attach(self, engine: Engine) -> None:
        """Register on ``engine`` (idempotent)."""
        event = IterationEvents.FORWARD_COMPLETED
        if not register_iteration_event(
            engine, event, self.iteration_completed, "FairnessEvaluationHandler", "SupervisedEvaluator"
        ):
            return
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def key_metric(self, name: str = "es_auc") -> FairnessKeyMetric:
        """An ignite ``Metric`` reading ``name`` from this handler, for ``key_val_metric``.

        Example:
            >>> fairness = FairnessEvaluationHandler(group_key="sex")
            >>> evaluator = SupervisedEvaluator(..., key_val_metric={"val_es_auc": fairness.key_metric("es_auc")})
        """
        return FairnessKeyMetric(self, name)

    def reset(self, engine: Engine | None = None) -> None:
        """Clear the buffers and the epoch's result (at ``EPOCH_STARTED``)."""
        self._scores, self._labels, self._groups = [], [], []
        self._result = None

    def _probabilities(self, pred: Any) -> Tensor:
        if not isinstance(pred, Tensor):
            raise MultiFairError(
                f"expected engine.state.output[Keys.PRED] to be a tensor, got {type(pred).__name__}"
            )
        pred = pred.detach().float()
        if self.activation == "softmax":
            if pred.dim() != 2 or pred.shape[1] < 2:
                raise MultiFairError(
                    f"activation='softmax' expects logits [B, C] with C >= 2, got shape {tuple(pred.shape)}; "
                    "use activation='sigmoid' for one logit"
                )
            return torch.softmax(pred, dim=1)
        if self.activation == "sigmoid":
            if pred.dim() == 2 and pred.shape[1] == 1:
                pred = pred[:, 0]
            if pred.dim() != 1:
                raise MultiFairError(
                    f"activation='sigmoid' expects one logit per sample [B] or [B, 1], got shape {tuple(pred.shape)}"
                )
            return torch.sigmoid(pred)
        if pred.dim() == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]
        return pred

    def iteration_completed(self, engine: Engine) -> None:
        """At ``FORWARD_COMPLETED``: buffer the batch's probabilities, labels and groups."""
        scores = self._probabilities(engine.state.output[Keys.PRED])
        batch = engine.state.batch
        n = scores.shape[0]
        for key, argument, store in (
            (self.label_key, "label_key", self._labels),
            (self.group_key, "group_key", self._groups),
        ):
            value = torch.as_tensor(batch_item(batch, key, argument))
            if value.numel() != n:
                raise MultiFairError(
                    f"expected batch[{key!r}] (`{argument}`) to hold one value per sample ({n}), got shape "
                    f"{tuple(value.shape)}"
                )
            store.append(value.reshape(-1).to(device=scores.device, dtype=torch.long))
        self._scores.append(scores)

    def compute(self) -> dict[str, float]:
        """Metrics of the buffered epoch (gathered over ranks); computed once per epoch, then cached."""
        if self._result is not None:
            return self._result
        if not self._scores:
            raise MultiFairError(
                "FairnessEvaluationHandler saw no predictions this epoch: is it attached to an engine that ran "
                "at least one iteration?"
            )
        scores = (
            evenly_divisible_all_gather(torch.cat(self._scores), concat=True).cpu().numpy().astype(np.float64)
        )
        labels = evenly_divisible_all_gather(torch.cat(self._labels), concat=True).cpu().numpy()
        groups = evenly_divisible_all_gather(torch.cat(self._groups), concat=True).cpu().numpy()
        names = self._group_labels(groups)
        if scores.ndim == 2 and scores.shape[1] == 2:
            y_score, y_true, pos_label = (
                scores[:, self.positive_class],
                (labels == self.positive_class).astype(np.int64),
                1,
            )
        else:
            y_score, y_true, pos_label = scores, labels, self.positive_class
        summary = fairness_summary(
            y_true,
            y_score,
            groups,
            names,
            threshold=self.threshold,
            alpha=self.alpha,
            min_group_size=self.min_group_size,
            pos_label=pos_label,
        )
        # the fairlearn MetricFrame costs about 80 ms per epoch: built on first access (metric_frame, save)
        self._metric_frame = None
        self._frame_inputs = (y_true, y_score, groups, names, pos_label)
        self._predictions = self._predictions_table(scores, labels, groups, names)
        self.summary = summary
        result = {f"{self.prefix}{name}": float(summary[name]) for name in SUMMARY_METRICS}
        for key, value in summary["group_auc"].items():
            result[f"{self.prefix}group_auc/{metric_label(key)}"] = float(value)
        self._result = result
        return result

    def _predictions_table(
        self, scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, names: list[str]
    ) -> pd.DataFrame:
        frame = pd.DataFrame({"label": labels.astype(np.int64)})
        if scores.ndim == 1:
            frame["score"] = scores
        elif scores.shape[1] == 2:
            frame["score"] = scores[:, self.positive_class]
        else:
            for c in range(scores.shape[1]):
                frame[f"prob_{c}"] = scores[:, c]
        frame["group"] = groups.astype(np.int64)
        frame["group_label"] = pd.Categorical.from_codes(groups, categories=names)
        return frame

    def predictions(self) -> pd.DataFrame:
        """The last computed epoch's predictions, one row per evaluated sample (gathered over ranks).

        Columns: ``label`` (the batch's ``label_key``, as integers), ``score`` (the probability of
        ``positive_class`` after ``activation``; with ``C > 2`` classes ``prob_0 ... prob_{C-1}``
        instead), ``group`` (the batch's ``group_key`` id) and ``group_label`` (its name). Rows are in
        the order the evaluator saw the samples (rank by rank under ``torch.distributed``). A copy:
        changing it changes nothing here.

        Raises:
            MultiFairError: no epoch has been computed yet.

        Example:
            >>> evaluator.run()
            >>> fairness.predictions().groupby("group_label")["score"].mean()
        """
        if self._predictions is None:
            raise MultiFairError(
                "FairnessEvaluationHandler has no predictions yet: run the evaluator for an epoch first"
            )
        return self._predictions.copy()

    @property
    def metric_frame(self) -> FairnessMetricFrame | None:
        """The fairlearn ``MetricFrame`` of the last computed epoch (built on first access), or ``None``."""
        if self._metric_frame is None and self._frame_inputs is not None:
            y_true, y_score, groups, names, pos_label = self._frame_inputs
            group_column = pd.Series(pd.Categorical.from_codes(groups, categories=names), name="group")
            with warnings.catch_warnings():
                # the same undefined groups were reported by fairness_summary's warning in compute()
                warnings.simplefilter("ignore", UndefinedGroupMetricWarning)
                self._metric_frame = fairness_metric_frame(
                    y_true,
                    y_score,
                    sensitive_features=group_column,
                    threshold=self.threshold,
                    min_group_size=self.min_group_size,
                    pos_label=pos_label,
                    alpha=self.alpha,
                )
        return self._metric_frame

    def _group_labels(self, groups: np.ndarray) -> list[str]:
        if groups.size and groups.min() < 0:
            raise MultiFairError(
                f"expected group ids >= 0 in batch[{self.group_key!r}], got {int(groups.min())}"
            )
        if self.group_labels is not None:
            count = len(self.group_labels)
        elif self.num_groups is not None:
            count = self.num_groups
        else:
            count = int(groups.max()) + 1 if groups.size else 1
        if groups.size and groups.max() >= count:
            raise MultiFairError(
                f"expected group ids in [0, {count}) in batch[{self.group_key!r}] (num_groups / group_labels), "
                f"got {int(groups.max())}"
            )
        return list(self.group_labels) if self.group_labels is not None else [str(g) for g in range(count)]

    def epoch_completed(self, engine: Engine) -> None:
        """At ``EPOCH_COMPLETED``: compute, write ``engine.state.metrics`` and, with ``output_dir``, the files."""
        fresh = self._result is None
        engine.state.metrics.update(self.compute())
        if fresh and self.output_dir is not None and getattr(engine.state, "rank", 0) == 0:
            self.save(self.output_dir, epoch=engine.state.epoch)

    def save(self, output_dir: str | os.PathLike, epoch: int) -> tuple[Path, Path]:
        """Write the epoch's frame as CSV and the summary + frame as JSON; returns both paths."""
        if self.metric_frame is None or self.summary is None:
            raise MultiFairError("no fairness results to save yet: run an evaluation epoch first")
        directory = Path(output_dir)
        directory.mkdir(parents=True, exist_ok=True)
        stem = directory / f"{self.file_prefix}_epoch{epoch:04d}"
        table = self.metric_frame.by_group.copy()
        table.loc["overall"] = self.metric_frame.overall
        table.index.name = "group"
        table.to_csv(stem.with_suffix(".csv"))

        def clean(value: Any) -> Any:
            value = float(value)
            return None if math.isnan(value) else value

        payload = {
            "epoch": epoch,
            "threshold": self.threshold,
            "summary": {name: clean(self.summary[name]) for name in SUMMARY_METRICS},
            "group_auc": {str(k): clean(v) for k, v in self.summary["group_auc"].items()},
            "degenerate": dict(self.summary["degenerate"]),
            "by_group": {
                str(group): {column: clean(v) for column, v in row.items()} for group, row in table.iterrows()
            },
        }
        stem.with_suffix(".json").write_text(json.dumps(payload, indent=2))
        return stem.with_suffix(".csv"), stem.with_suffix(".json")


class FairnessKeyMetric(Metric):
    """One metric of a :class:`FairnessEvaluationHandler` as an ignite ``Metric`` (for ``key_val_metric``).

    Attaching it also attaches the handler; at ``EPOCH_COMPLETED`` it makes the handler compute the
    epoch (once) and write all its metrics, then reports ``name`` (without the handler's prefix).

    Args:
        handler: the fairness handler that buffers the predictions.
        name: one of ``auc``, ``es_auc``, ``worst_group_auc``, ``dpd``, ``deodds`` or ``group_auc/<group>``.
    """

    def __init__(self, handler: FairnessEvaluationHandler, name: str = "es_auc") -> None:
        if name not in SUMMARY_METRICS and not name.startswith("group_auc/"):
            raise MultiFairError(
                f"unknown fairness metric {name!r}; known: {', '.join(SUMMARY_METRICS)}, group_auc/<group>"
                + close_match_hint(name, SUMMARY_METRICS)
            )
        self.handler = handler
        self.name = name
        super().__init__()

    def reset(self) -> None:
        """Nothing to reset: the handler holds the buffers (cleared at ``EPOCH_STARTED``)."""

    def update(self, output: Any) -> None:
        """Nothing to update: the handler buffers at ``FORWARD_COMPLETED``."""

    def compute(self) -> float:
        """The handler's value of ``name`` for the epoch."""
        result = self.handler.compute()
        key = f"{self.handler.prefix}{self.name}"
        if key not in result:
            raise MultiFairError(
                f"no fairness metric {key!r} this epoch; computed: {', '.join(sorted(result))}"
            )
        return result[key]

    def attach(self, engine: Engine, name: str, usage: Any = None) -> None:
        """Attach the handler, then this metric under ``name``."""
        self.handler.attach(engine)
        if usage is None:
            super().attach(engine, name)
        else:
            super().attach(engine, name, usage)

    def completed(self, engine: Engine, name: str) -> None:
        """Let the handler write all its metrics, then store this one under ``name``."""
        self.handler.epoch_completed(engine)
        super().completed(engine, name)
