"""Group fairness metrics of the field (``docs/howto/audit.md``), in fairlearn's call shape.

With ``p`` the positive-class probability, ``y`` the binary label, ``a`` the group and the operating
threshold ``t`` (predicted positive when ``p >= t``):

* ``AUC_g``: ROC-AUC inside group ``g`` (exact, ties count one half, as ``sklearn.metrics.roc_auc_score``);
* ES-AUC ``= AUC / (1 + alpha * sum_g |AUC - AUC_g|)``;
* worst-group AUC ``= min_g AUC_g``;
* DPD ``= max_g - min_g`` of the selection rate ``P(yhat = 1 | a = g)``;
* DEOdds ``= max(max_g - min_g TPR_g, max_g - min_g FPR_g)``.

Undefined-value policy (the same everywhere in :mod:`monai_multifair.metrics`):

1. A group metric is undefined (NaN) when the group has fewer than ``min_group_size`` samples or
   lacks what the metric divides by: AUC needs positives and negatives (for multi-class scores, every
   class present and absent), TPR a positive, FPR a negative. It is never replaced by 0.5 or 0.
2. Cross-group summaries (ES-AUC, worst-group AUC, AUC gap, DPD, DEOdds) use the groups where the
   metric is defined and leave the others out; an :class:`UndefinedGroupMetricWarning` names every
   group left out and why. With fewer than two defined groups a summary is NaN: one group shows no
   disparity, and 0 would look fair.

Degenerate predictions (a third policy, for thresholded metrics): when the whole cohort, or a group,
has no positive predictions (every ``p < t``) or no negative predictions (every ``p >= t``), its
selection rate is 0 or 1 and its TPR and FPR are both 0 or both 1 by construction. DPD, DEOdds and the
selection-rate / TPR / FPR gaps then describe a constant decision, not a fair model: a model whose
highest score is 0.31 has DPD 0 at ``t = 0.5``. Such values are kept but flagged:
:func:`degenerate_predictions` names the groups (``"overall"`` for the whole cohort) and why, and
:func:`fairness_summary` returns the same mapping under ``"degenerate"`` (empty when nothing is
degenerate), which the run's ``metrics.json`` and the audit report carry on.

This differs from fairlearn's own ``equalized_odds_difference`` in one case: fairlearn counts the TPR
of a group without positives as 0 (sklearn's ``confusion_matrix(normalize="true")``); here it is
undefined. When every group has both classes the two agree (tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from monai_multifair.metrics import group_tensors
from monai_multifair.metrics._inputs import (
    METRIC_NAMES,
    SUMMARY_NAMES,
    Groups,
    Predictions,
    UndefinedGroupMetricWarning,
    check_alpha,
    check_min_group_size,
    check_threshold,
    groups_from_ids,
    keyword_only_features,
    prepare_groups,
    prepare_predictions,
    prepare_sample_weight,
)

__all__ = [
    "DEGENERATE_METRICS",
    "degenerate_predictions",
    "demographic_parity_difference",
    "equalized_odds_difference",
    "equity_scaled_auc",
    "fairness_summary",
    "group_auc",
    "worst_group_auc",
]


#: Summary statistics that are flagged when predictions are degenerate (see the module policy).
DEGENERATE_METRICS: tuple[str, ...] = ("dpd", "deodds")
#: Per-group metrics (and their gaps) flagged alike.
DEGENERATE_GROUP_METRICS: tuple[str, ...] = ("selection_rate", "tpr", "fpr")


def find_degenerate(
    p: np.ndarray,
    group_ids: np.ndarray,
    labels: Sequence[Any],
    threshold: float,
    *,
    min_group_size: int = 1,
    sample_weight: np.ndarray | None = None,
) -> dict[str, str]:
    """``{"overall" or ``labels[g]``: reason}`` for the cohort and every group (with at least
    ``min_group_size`` samples of positive weight) whose decisions ``p >= threshold`` are all 0 or all 1."""
    keep = np.ones(p.shape[0], dtype=bool) if sample_weight is None else np.asarray(sample_weight) > 0
    out: dict[str, str] = {}
    members = [("overall", keep)] + [(label, keep & (group_ids == g)) for g, label in enumerate(labels)]
    for label, mask in members:
        scores = p[mask]
        if scores.size == 0 or scores.size < min_group_size:
            continue
        high, low = float(scores.max()), float(scores.min())
        if high < threshold:
            out[label] = (
                f"no positive predictions: highest score {high:.3f} < threshold {threshold:g} ({scores.size} samples)"
            )
        elif low >= threshold:
            out[label] = (
                f"no negative predictions: lowest score {low:.3f} >= threshold {threshold:g} ({scores.size} samples)"
            )
    return out


@keyword_only_features
def degenerate_predictions(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    threshold: float = 0.5,
    sample_weight: Any = None,
    min_group_size: int = 1,
    pos_label: Any = 1,
) -> dict[str, str]:
    """The cohort and groups whose thresholded predictions are all negative or all positive.

    There DPD, DEOdds and the selection-rate / TPR / FPR gaps (:data:`DEGENERATE_METRICS`) describe a
    constant decision, not fairness; the reports flag them instead of showing a clean 0.

    Args:
        y_true: ``[N]`` labels, as :func:`group_auc`.
        y_score: ``[N]`` or ``[N, C]`` probabilities in ``[0, 1]``.
        sensitive_features: the groups, as :func:`group_auc`.
        threshold: operating threshold ``t`` (predicted positive when ``p >= t``).
        sample_weight: optional ``[N]`` weights; samples of weight 0 are left out.
        min_group_size: smaller groups are not examined (their metrics are undefined anyway).
        pos_label: positive label (1-D scores) or positive column (2-D scores).

    Returns:
        ``{"overall" or group label: reason}``, empty when every group has both decisions.

    Example:
        >>> degenerate_predictions([0, 1, 0, 1], [0.1, 0.31, 0.2, 0.6], sensitive_features={"g": ["a", "a", "b", "b"]})
        {'g=a': 'no positive predictions: highest score 0.310 < threshold 0.5 (2 samples)'}
    """
    pred = prepare_predictions(y_true, y_score, pos_label=pos_label, require_probabilities=True)
    groups = prepare_groups(sensitive_features, pred.n)
    return find_degenerate(
        pred.p,
        groups.ids,
        groups.labels,
        check_threshold(threshold),
        min_group_size=check_min_group_size(min_group_size),
        sample_weight=prepare_sample_weight(sample_weight, pred.n),
    )


@dataclass(frozen=True)
class PointEstimate:
    """Point estimates of every metric (numpy) and summary, with the inputs they came from.

    Attributes:
        by_group: ``{metric: [K]}``.
        overall: ``{metric: float}``.
        summary: ``{summary: float}`` (see :data:`SUMMARY_NAMES`).
        rows, positives, negatives: ``[K + 1]`` row count, positive and negative weight (last = overall).
    """

    by_group: dict[str, np.ndarray]
    overall: dict[str, float]
    summary: dict[str, float]
    rows: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    groups: Groups
    cohort: group_tensors.Cohort


def point_estimate(
    pred: Predictions,
    groups: Groups,
    *,
    threshold: float = 0.5,
    alpha: float = 1.0,
    min_group_size: int = 1,
    calibration_bins: int = 10,
    sample_weight: np.ndarray | None = None,
    device: Any = None,
) -> PointEstimate:
    """Evaluate every metric once on the observed data (the engine with a single row of ones)."""
    cohort = group_tensors.build_cohort(
        pred,
        groups.ids,
        groups.num_groups,
        threshold=threshold,
        calibration_bins=calibration_bins,
        sample_weight=sample_weight,
        device=device,
    )
    ones = torch.ones((1, cohort.n), dtype=group_tensors.DTYPE, device=cohort.device)
    metrics = group_tensors.metrics_by_group(cohort, ones, min_group_size)
    summary = group_tensors.cross_group_summaries(metrics, alpha)
    values = {name: metrics[name][0].cpu().numpy() for name in metrics}
    return PointEstimate(
        by_group={name: values[name][:-1] for name in METRIC_NAMES},
        overall={name: float(values[name][-1]) for name in METRIC_NAMES},
        summary={name: float(summary[name][0]) for name in SUMMARY_NAMES},
        rows=values["_rows"],
        positives=values["_pos"],
        negatives=values["_neg"],
        groups=groups,
        cohort=cohort,
    )


def warn_undefined(
    point: PointEstimate, metrics: tuple[str, ...], min_group_size: int, multiclass: bool, stacklevel: int = 3
) -> None:
    """Emit one :class:`UndefinedGroupMetricWarning` naming each group whose ``metrics`` are NaN."""
    labels = (*point.groups.labels, "overall")
    by_name = {name: np.append(point.by_group[name], point.overall[name]) for name in metrics}
    notes = []
    for g, label in enumerate(labels):
        undefined = [name for name in metrics if np.isnan(by_name[name][g])]
        if not undefined:
            continue
        rows = int(point.rows[g])
        if rows == 0:
            reason = "no samples"
        elif rows < min_group_size:
            reason = f"{rows} sample(s) < min_group_size={min_group_size}"
        else:
            parts = []
            if point.positives[g] <= 0:
                parts.append("no positive samples")
            if point.negatives[g] <= 0:
                parts.append("no negative samples")
            if multiclass and "auc" in undefined and not parts:
                parts.append("a class is missing or alone (one-vs-rest AUC undefined)")
            reason = ", ".join(parts) or "zero total sample weight"
        notes.append(f"{label!r} ({', '.join(undefined)}: {reason})")
    overall_undefined = int(any(np.isnan(by_name[name][-1]) for name in metrics))
    if notes:
        where = f"{len(notes) - overall_undefined} group(s)" + (" and overall" if overall_undefined else "")
        warnings.warn(
            f"undefined (NaN) metrics for {where}, left out of cross-group summaries: " + "; ".join(notes),
            UndefinedGroupMetricWarning,
            stacklevel=stacklevel,
        )


def _evaluate(
    pred: Predictions,
    groups: Groups,
    *,
    warn_for: tuple[str, ...],
    threshold: float = 0.5,
    alpha: float = 1.0,
    min_group_size: int = 1,
    sample_weight: Any = None,
    stacklevel: int = 4,
) -> PointEstimate:
    """Validate the settings, evaluate, and warn about undefined ``warn_for`` metrics.

    ``stacklevel`` counts from ``warn_undefined``: 4 points at the caller of a public function that
    calls this directly.
    """
    min_group_size = check_min_group_size(min_group_size)
    point = point_estimate(
        pred,
        groups,
        threshold=check_threshold(threshold),
        alpha=check_alpha(alpha),
        min_group_size=min_group_size,
        sample_weight=prepare_sample_weight(sample_weight, pred.n),
    )
    warn_undefined(point, warn_for, min_group_size, pred.multiclass, stacklevel=stacklevel)
    return point


def _from_features(
    y_true: Any,
    y_score: Any,
    sensitive_features: Any,
    pos_label: Any,
    probabilities: bool,
    warn_for: tuple[str, ...],
    settings: dict[str, Any],
) -> PointEstimate:
    """Prepare labels, scores (``probabilities``: demand [0, 1]) and groups, then :func:`_evaluate`."""
    pred = prepare_predictions(y_true, y_score, pos_label=pos_label, require_probabilities=probabilities)
    groups = prepare_groups(sensitive_features, pred.n)
    return _evaluate(pred, groups, warn_for=warn_for, stacklevel=6, **settings)  # caller of the wrapper


@keyword_only_features
def group_auc(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    sample_weight: Any = None,
    min_group_size: int = 1,
    pos_label: Any = 1,
) -> pd.Series:
    """ROC-AUC inside each (intersectional) group, ``AUC_g``.

    Args:
        y_true: ``[N]`` labels (binary, or class ids for ``[N, C]`` scores).
        y_score: ``[N]`` positive-class scores or ``[N, C]`` class scores (any real values; for
            ``C >= 3`` the one-vs-rest macro AUC, as ``roc_auc_score(multi_class="ovr")``).
        sensitive_features: ``[N]`` values, ``[N, F]`` array, Series, DataFrame or dict of columns;
            several columns give their intersections.
        sample_weight: optional ``[N]`` non-negative weights.
        min_group_size: groups with fewer samples are undefined.
        pos_label: positive label (1-D scores) or positive column (2-D scores).

    Returns:
        ``pandas.Series`` indexed like fairlearn's ``MetricFrame.by_group``; NaN where undefined
        (with an :class:`UndefinedGroupMetricWarning`).

    Example:
        >>> group_auc([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.4], sensitive_features=["a", "a", "b", "b"]).tolist()
        [1.0, 0.5]
    """
    settings = {"min_group_size": min_group_size, "sample_weight": sample_weight}
    point = _from_features(y_true, y_score, sensitive_features, pos_label, False, ("auc",), settings)
    return pd.Series(point.by_group["auc"], index=point.groups.index, name="auc")


@keyword_only_features
def worst_group_auc(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    sample_weight: Any = None,
    min_group_size: int = 1,
    pos_label: Any = 1,
) -> float:
    """Worst-group AUC ``min_g AUC_g`` over the groups with a defined AUC.

    Arguments as :func:`group_auc`. NaN when fewer than two groups have a defined AUC.

    Example:
        >>> worst_group_auc([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.4], sensitive_features=["a", "a", "b", "b"])
        0.5
    """
    settings = {"min_group_size": min_group_size, "sample_weight": sample_weight}
    point = _from_features(y_true, y_score, sensitive_features, pos_label, False, ("auc",), settings)
    return point.summary["worst_group_auc"]


@keyword_only_features
def equity_scaled_auc(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    alpha: float = 1.0,
    sample_weight: Any = None,
    min_group_size: int = 1,
    pos_label: Any = 1,
) -> float:
    """Equity-scaled AUC (Harvard-GF / FairVision / FairCLIP).

    ``ES-AUC = AUC / (1 + alpha * sum_g |AUC - AUC_g|)``

    One-class groups (and groups below ``min_group_size``) have no ``AUC_g``: they are left out of the
    sum with an :class:`UndefinedGroupMetricWarning` naming them. With fewer than two defined groups,
    or an undefined overall AUC, the result is NaN.

    Args:
        y_true: ``[N]`` labels, as :func:`group_auc`.
        y_score: ``[N]`` or ``[N, C]`` scores, as :func:`group_auc`.
        sensitive_features: the groups, as :func:`group_auc`.
        alpha: the disparity scale ``alpha >= 0`` (1 in the field's papers).
        sample_weight: optional ``[N]`` non-negative weights.
        min_group_size: groups with fewer samples are undefined.
        pos_label: positive label (1-D scores) or positive column (2-D scores).

    Returns:
        ES-AUC as a float.

    Example:
        >>> equity_scaled_auc([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.4], sensitive_features=["a", "a", "b", "b"])
        0.5833333333333334
    """
    settings = {"alpha": alpha, "min_group_size": min_group_size, "sample_weight": sample_weight}
    point = _from_features(y_true, y_score, sensitive_features, pos_label, False, ("auc",), settings)
    return point.summary["es_auc"]


@keyword_only_features
def demographic_parity_difference(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    threshold: float = 0.5,
    sample_weight: Any = None,
    min_group_size: int = 1,
    pos_label: Any = 1,
) -> float:
    """Demographic parity difference of the thresholded scores.

    ``DPD = max_g SR_g - min_g SR_g`` with ``SR_g = P(p >= threshold | a = g)``; equal to fairlearn's
    ``demographic_parity_difference(y_true, y_score >= threshold, sensitive_features=...)``.

    Args:
        y_true: ``[N]`` labels, as :func:`group_auc`.
        y_score: ``[N]`` or ``[N, C]`` probabilities in ``[0, 1]``.
        sensitive_features: the groups, as :func:`group_auc`.
        threshold: operating threshold ``t`` on the positive-class probability.
        sample_weight: optional ``[N]`` non-negative weights.
        min_group_size: groups with fewer samples are undefined.
        pos_label: positive label (1-D scores) or positive column (2-D scores).

    Returns:
        DPD as a float (NaN with fewer than two defined groups).

    Example:
        >>> demographic_parity_difference([0, 1, 0, 1], [0.1, 0.9, 0.6, 0.7], sensitive_features=["a", "a", "b", "b"])
        0.5
    """
    settings = {"threshold": threshold, "min_group_size": min_group_size, "sample_weight": sample_weight}
    point = _from_features(
        y_true, y_score, sensitive_features, pos_label, True, ("selection_rate",), settings
    )
    return point.summary["dpd"]


@keyword_only_features
def equalized_odds_difference(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    threshold: float = 0.5,
    sample_weight: Any = None,
    min_group_size: int = 1,
    pos_label: Any = 1,
) -> float:
    """Equalized odds difference (DEOdds) of the thresholded scores.

    ``DEOdds = max(max_g TPR_g - min_g TPR_g, max_g FPR_g - min_g FPR_g)``. Equal to fairlearn's
    ``equalized_odds_difference`` when every group has both classes; a group without positives
    (negatives) has an undefined TPR (FPR) here and is left out, where fairlearn counts it as 0.

    Args:
        y_true: ``[N]`` labels, as :func:`group_auc`.
        y_score: ``[N]`` or ``[N, C]`` probabilities in ``[0, 1]``.
        sensitive_features: the groups, as :func:`group_auc`.
        threshold: operating threshold ``t`` on the positive-class probability.
        sample_weight: optional ``[N]`` non-negative weights.
        min_group_size: groups with fewer samples are undefined.
        pos_label: positive label (1-D scores) or positive column (2-D scores).

    Returns:
        DEOdds as a float (NaN when either gap has fewer than two defined groups).

    Example:
        >>> equalized_odds_difference([0, 1, 0, 1], [0.1, 0.9, 0.6, 0.7], sensitive_features=["a", "a", "b", "b"])
        1.0
    """
    settings = {"threshold": threshold, "min_group_size": min_group_size, "sample_weight": sample_weight}
    point = _from_features(y_true, y_score, sensitive_features, pos_label, True, ("tpr", "fpr"), settings)
    return point.summary["deodds"]


def fairness_summary(
    y_true: Any,
    y_score: Any,
    groups: Any,
    group_labels: Any = None,
    *,
    threshold: float = 0.5,
    alpha: float = 1.0,
    min_group_size: int = 1,
    pos_label: Any = 1,
    sample_weight: Any = None,
) -> dict[str, Any]:
    """The field's headline numbers in one dict, for an evaluator at each epoch end.

    Args:
        y_true: ``[N]`` labels (numpy array, list or tensor).
        y_score: ``[N]`` positive-class probabilities or ``[N, C]`` class probabilities.
        groups: ``[N]`` integer group ids in ``[0, K)`` (e.g. from ``GroupEncoder.transform``).
        group_labels: optional ``K`` names; ``K = len(group_labels)``, else ``K = max(groups) + 1``.
        threshold: operating threshold on the positive-class probability (DPD, DEOdds).
        alpha: ES-AUC disparity scale.
        min_group_size: groups with fewer samples are undefined.
        pos_label: positive label (1-D scores) or positive column (2-D scores).
        sample_weight: optional ``[N]`` weights.

    Returns:
        ``{"auc", "es_auc", "worst_group_auc", "dpd", "deodds"}`` as floats (NaN where undefined,
        see the module policy), ``"group_auc"``: ``{label or id: AUC_g}``, keyed by
        ``group_labels[g]`` (as ``str``) when given, else by the integer id ``g``, and
        ``"degenerate"``: ``{"overall" or group key (as in ``group_auc``): reason}`` for degenerate predictions (see
        :func:`degenerate_predictions`; empty when there are none): then ``dpd`` and ``deodds`` describe
        a constant decision and must not be read as fair.

    Example:
        >>> out = fairness_summary([0, 1, 0, 1], [0.1, 0.9, 0.6, 0.7], [0, 0, 1, 1], ["a", "b"])
        >>> out["group_auc"], out["dpd"]
        ({'a': 1.0, 'b': 1.0}, 0.5)
    """
    pred = prepare_predictions(y_true, y_score, pos_label=pos_label, require_probabilities=True)
    point = _evaluate(
        pred,
        groups_from_ids(groups, pred.n, group_labels),
        warn_for=("auc", "selection_rate", "tpr", "fpr"),
        threshold=threshold,
        alpha=alpha,
        min_group_size=min_group_size,
        sample_weight=sample_weight,
    )
    out: dict[str, Any] = {
        name: point.summary[name] for name in ("auc", "es_auc", "worst_group_auc", "dpd", "deodds")
    }
    out["group_auc"] = {
        key: float(v) for key, v in zip(point.groups.index, point.by_group["auc"], strict=True)
    }
    out["degenerate"] = find_degenerate(
        pred.p,
        point.groups.ids,
        list(point.groups.index),
        float(threshold),
        min_group_size=int(min_group_size),
        sample_weight=prepare_sample_weight(sample_weight, pred.n),
    )
    return out
