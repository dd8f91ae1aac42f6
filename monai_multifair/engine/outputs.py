"""What a run writes: predictions, test metrics, audit reports, and the comparison of several runs."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.atomic_io import atomic_write_text
from monai_multifair.config import RunConfig
from monai_multifair.data import MultimodalDataset
from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import DEGENERATE_METRICS, UndefinedGroupMetricWarning, fairness_summary
from monai_multifair.report import AuditReport

__all__ = [
    "HEADLINE_METRICS",
    "REPORT_FILES",
    "audit_report",
    "json_ready",
    "predictions_frame",
    "scores_of",
    "test_metrics",
    "write_json",
]

#: The headline numbers of a run, in table order, with their display names.
HEADLINE_METRICS: dict[str, str] = {
    "auc": "AUC",
    "es_auc": "ES-AUC",
    "worst_group_auc": "worst-group AUC",
    "dpd": "DPD",
    "deodds": "DEOdds",
}
#: Report format (``output.report_formats``) -> file name in the run folder.
REPORT_FILES: dict[str, str] = {"html": "report.html", "markdown": "report.md", "json": "report.json"}


def json_ready(value: Any) -> Any:
    """A copy with NaN/inf as ``None`` and numpy/pandas scalars as Python numbers (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def write_json(payload: Any, path: Path) -> Path:
    """Write ``payload`` as indented strict JSON (NaN as ``null``), atomically."""
    return atomic_write_text(path, json.dumps(json_ready(payload), indent=2, allow_nan=False) + "\n")


def scores_of(probabilities: np.ndarray) -> np.ndarray:
    """The positive-class probability ``[N]`` of a binary task, else the class probabilities ``[N, C]``."""
    return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities


def predictions_frame(
    dataset: MultimodalDataset,
    probabilities: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    ids: list[str],
) -> pd.DataFrame:
    """One row per sample: ``id``, ``label``, ``score`` (binary; ``prob_<c>`` per class otherwise),
    ``group`` (id), ``group_label`` and one column per sensitive attribute (display values).

    Raises:
        MultiFairError: the predictions are not in the dataset's order (they must be, unshuffled).
    """
    if list(ids) != dataset.ids:
        raise MultiFairError(
            f"predictions of {dataset.name} are not in the dataset's order: the evaluation loader must not shuffle"
        )
    frame = pd.DataFrame({"id": ids, "label": labels.astype(np.int64)})
    if probabilities.shape[1] == 2:
        frame["score"] = probabilities[:, 1]
    else:
        for c in range(probabilities.shape[1]):
            frame[f"prob_{c}"] = probabilities[:, c]
    frame["group"] = groups.astype(np.int64)
    names = dataset.group_labels
    frame["group_label"] = [names[g] for g in frame["group"]]
    attributes = dataset.sensitive_features.reset_index(drop=True)
    for column in attributes.columns:
        frame[column] = attributes[column].astype(str).to_numpy()
    return frame


def _notes(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    notes: list[str] = []
    for w in caught:
        text = str(w.message)
        if text not in notes:
            notes.append(text)
    return notes


def test_metrics(
    config: RunConfig,
    dataset: MultimodalDataset,
    probabilities: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    threshold: float | None = None,
) -> dict[str, Any]:
    """AUC, ES-AUC, worst-group AUC, DPD, DEOdds and per-group AUC (:func:`~monai_multifair.metrics.fairness_summary`).

    ``threshold`` defaults to ``evaluation.threshold`` (which must then be a number). Undefined values
    stay NaN; the groups they concern are named in ``notes``. ``degenerate`` maps ``"overall"`` or a
    group to the reason its decisions are all negative or all positive (empty when none): then ``dpd``
    and ``deodds`` describe a constant decision, not fairness, and ``degenerate_metrics`` names them.
    """
    threshold = config.evaluation.threshold if threshold is None else threshold
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndefinedGroupMetricWarning)
        summary = fairness_summary(
            labels,
            scores_of(probabilities),
            groups,
            list(dataset.group_labels),
            threshold=threshold,
            alpha=config.evaluation.alpha,
        )
    out = {name: float(summary[name]) for name in HEADLINE_METRICS}
    out["degenerate"] = dict(summary["degenerate"])
    out["degenerate_metrics"] = list(DEGENERATE_METRICS) if summary["degenerate"] else []
    out["group_auc"] = {str(k): float(v) for k, v in summary["group_auc"].items()}
    out["n"] = int(len(labels))
    out["group_counts"] = {
        name: int(count)
        for name, count in zip(dataset.group_labels, np.bincount(groups, minlength=len(dataset.group_labels)))
    }
    out["notes"] = _notes([w for w in caught if issubclass(w.category, UndefinedGroupMetricWarning)])
    for w in caught:  # anything else is not ours to swallow
        if not issubclass(w.category, UndefinedGroupMetricWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def audit_report(
    config: RunConfig,
    frame: pd.DataFrame,
    dataset: MultimodalDataset,
    *,
    title: str,
    training_stats: pd.DataFrame | None,
    threshold: float | None = None,
    threshold_source: str | None = None,
) -> tuple[AuditReport, list[str]]:
    """The :class:`~monai_multifair.report.AuditReport` of a predictions frame, and its notes.

    ``threshold`` defaults to ``evaluation.threshold`` (a number); ``threshold_source`` says how it
    was chosen. Bootstrap intervals follow ``evaluation.n_boot``, ``ci_level`` and ``random_state``, the
    disparity tests ``evaluation.n_permutations``; the
    training statistics of the method (MultiFair's modality and group factors) are included when given.
    """
    evaluation = config.evaluation
    tail = (1 - evaluation.ci_level) / 2
    score_columns = (
        ["score"] if "score" in frame.columns else [c for c in frame.columns if c.startswith("prob_")]
    )
    scores = (
        frame[score_columns[0]].to_numpy() if len(score_columns) == 1 else frame[score_columns].to_numpy()
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndefinedGroupMetricWarning)
        report = AuditReport.from_predictions(
            frame["label"].to_numpy(),
            scores,
            sensitive_features=frame[list(dataset.attributes)],
            threshold=evaluation.threshold if threshold is None else threshold,
            threshold_source=threshold_source,
            n_boot=evaluation.n_boot or None,
            n_permutations=evaluation.n_permutations or None,
            ci_quantiles=(tail, 1 - tail),
            random_state=evaluation.random_state,
            training_stats=training_stats,
            title=title,
            alpha=evaluation.alpha,
        )
    for w in caught:
        if not issubclass(w.category, UndefinedGroupMetricWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return report, _notes([w for w in caught if issubclass(w.category, UndefinedGroupMetricWarning)])
