"""``fairness_metric_frame``: the field's per-group metrics as a fairlearn ``MetricFrame``.

The point estimates are computed by fairlearn itself from scikit-learn/fairlearn metric functions
(:func:`metric_functions`); the bootstrap confidence intervals come from the vectorised torch
bootstrap (:func:`~monai_multifair.metrics.bootstrap_fairness`), which reproduces fairlearn's
``n_boot`` replicates exactly, and are exposed through fairlearn's own accessors
(``overall_ci``, ``by_group_ci``, ``group_min_ci()``, ``group_max_ci()``, ``difference_ci()``,
``ratio_ci()``) plus :attr:`FairnessMetricFrame.bootstrap` for ES-AUC, DPD and DEOdds intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import sklearn.metrics as skm
from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics._inputs import (
    METRIC_NAMES,
    MIN_SUPPORT,
    calibration_bin_ids,
    check_alpha,
    check_calibration_bins,
    check_min_group_size,
    check_threshold,
    keyword_only_features,
    prepare_groups,
    prepare_predictions,
    prepare_sample_weight,
)
from monai_multifair.metrics.bootstrap import BootstrapResult, bootstrap_fairness
from monai_multifair.metrics.fairness import point_estimate, warn_undefined

__all__ = ["FairnessMetricFrame", "fairness_metric_frame", "metric_functions"]


@dataclass(frozen=True)
class _GroupRows:
    """One group's rows as the metrics read them (binary: ``positive`` is ``y``, ``scores`` ``None``)."""

    y: np.ndarray  # [N] labels (class ids for multi-class)
    scores: np.ndarray | None  # [N, n_classes] class probabilities (multi-class only)
    p: np.ndarray  # [N] positive-class probability
    positive: np.ndarray  # [N] 0/1 indicator of pos_label
    predicted: np.ndarray  # [N] 0/1: p >= threshold
    weight: np.ndarray  # [N] sample weights (ones without them)


@dataclass(frozen=True)
class _MetricSettings:
    """What every metric of :func:`metric_functions` shares: the threshold, classes and the group floor."""

    threshold: float
    n_classes: int
    pos_label: int
    min_group_size: int
    calibration_bins: int

    @property
    def multiclass(self) -> bool:
        return self.n_classes >= 3

    def rows(self, y_true: Any, y_pred: Any, sample_weight: Any) -> _GroupRows | None:
        """The group's arrays, or ``None`` when the group is too small or has no weight (metric: NaN)."""
        y = np.asarray(y_true)
        scores = np.stack([np.asarray(r, dtype=np.float64) for r in y_pred]) if self.multiclass else None
        p = scores[:, self.pos_label] if scores is not None else np.asarray(y_pred, dtype=np.float64)
        positive = (y == self.pos_label).astype(np.int64) if self.multiclass else y.astype(np.int64)
        w = np.ones(y.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if y.shape[0] < self.min_group_size or w.sum() <= 0:
            return None
        return _GroupRows(y, scores, p, positive, (p >= self.threshold).astype(np.int64), w)


def _auc(settings: _MetricSettings, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    rows = settings.rows(y_true, y_pred, sample_weight)
    if rows is None:
        return np.nan
    if rows.scores is not None:
        columns = [(rows.y == c, rows.scores[:, c]) for c in range(settings.n_classes)]
    else:
        columns = [(rows.positive == 1, rows.p)]
    values = []
    for target, score in columns:
        if rows.weight[target].sum() <= 0 or rows.weight[~target].sum() <= 0:
            return np.nan  # a class absent from the group: AUC undefined
        values.append(skm.roc_auc_score(target, score, sample_weight=sample_weight))
    return float(np.mean(values))


def _accuracy(settings: _MetricSettings, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    rows = settings.rows(y_true, y_pred, sample_weight)
    if rows is None:
        return np.nan
    if rows.scores is not None:
        return float(skm.accuracy_score(rows.y, np.argmax(rows.scores, axis=1), sample_weight=sample_weight))
    return float(skm.accuracy_score(rows.positive, rows.predicted, sample_weight=sample_weight))


def _rate(
    fn: Callable, needs: int, settings: _MetricSettings, y_true: Any, y_pred: Any, sample_weight: Any = None
) -> float:
    """fairlearn's ``fn`` (a TPR or FPR), NaN when the group has no row of class ``needs``."""
    rows = settings.rows(y_true, y_pred, sample_weight)
    if rows is None or rows.weight[rows.positive == needs].sum() <= 0:
        return np.nan
    return float(fn(rows.positive, rows.predicted, sample_weight=sample_weight, pos_label=1))


def _selection(settings: _MetricSettings, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    rows = settings.rows(y_true, y_pred, sample_weight)
    if rows is None:
        return np.nan
    return float(selection_rate(rows.positive, rows.predicted, pos_label=1, sample_weight=sample_weight))


def _prevalence(settings: _MetricSettings, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    rows = settings.rows(y_true, y_pred, sample_weight)
    return np.nan if rows is None else float(np.average(rows.positive, weights=rows.weight))


def _calibration_error(
    settings: _MetricSettings, y_true: Any, y_pred: Any, sample_weight: Any = None
) -> float:
    rows = settings.rows(y_true, y_pred, sample_weight)
    if rows is None:
        return np.nan
    bins = settings.calibration_bins
    gap = np.bincount(
        calibration_bin_ids(rows.p, bins), weights=rows.weight * (rows.positive - rows.p), minlength=bins
    )
    return float(np.abs(gap).sum() / rows.weight.sum())


def metric_functions(
    *,
    threshold: float = 0.5,
    n_classes: int = 2,
    pos_label: int = 1,
    min_group_size: int = 1,
    calibration_bins: int = 10,
) -> dict[str, Callable[..., float]]:
    """The metric callables handed to fairlearn's ``MetricFrame``, keyed by :data:`METRIC_NAMES`.

    Each takes ``(y_true, y_pred, sample_weight=None)`` (``count``: ``(y_true, y_pred)``) where, for
    binary problems, ``y_true`` is the 0/1 positive indicator and ``y_pred`` the positive-class
    probability ``p``; for ``n_classes >= 3``, ``y_true`` holds class ids and ``y_pred`` rows of class
    probabilities. They wrap scikit-learn and fairlearn:

    * ``auc``: ``sklearn.metrics.roc_auc_score`` (multi-class: mean of the one-vs-rest AUCs);
    * ``accuracy``: ``sklearn.metrics.accuracy_score`` of ``p >= threshold`` (multi-class: argmax);
    * ``tpr`` / ``fpr`` / ``selection_rate`` / ``count``: fairlearn's functions on ``p >= threshold``
      (one-vs-rest on ``pos_label`` for multi-class);
    * ``prevalence``: weighted share of positives;
    * ``calibration_error``: expected calibration error ``sum_b (W_b / W) |mean_b(y) - mean_b(p)|``
      over ``calibration_bins`` equal-width bins of ``p`` (bin ``b`` = ``(b/n, (b+1)/n]``, the first
      also holds 0: the bins of ``sklearn.calibration.calibration_curve(strategy="uniform")``).

    Each returns NaN (never a substitute number) when the group has fewer than ``min_group_size``
    rows or lacks what the metric needs (``count`` is always the number of rows).
    """
    settings = _MetricSettings(threshold, n_classes, pos_label, min_group_size, calibration_bins)
    functions = {
        "auc": partial(_auc, settings),
        "accuracy": partial(_accuracy, settings),
        "tpr": partial(_rate, true_positive_rate, 1, settings),
        "fpr": partial(_rate, false_positive_rate, 0, settings),
        "selection_rate": partial(_selection, settings),
        "count": count,
        "prevalence": partial(_prevalence, settings),
        "calibration_error": partial(_calibration_error, settings),
    }
    return {name: functions[name] for name in METRIC_NAMES}


class FairnessMetricFrame(MetricFrame):
    """A fairlearn ``MetricFrame`` whose confidence intervals come from the torch bootstrap.

    Everything fairlearn offers works unchanged (``overall``, ``by_group``, ``difference()``, ...).
    When built with ``n_boot``, the interval accessors return the same objects fairlearn would
    (one pandas object per quantile), computed by :func:`~monai_multifair.metrics.bootstrap_fairness`
    with fairlearn's replicates and quantile rules, and :attr:`bootstrap` holds the full
    :class:`~monai_multifair.metrics.BootstrapResult` (ES-AUC, worst-group AUC, DPD, DEOdds
    intervals via ``bootstrap.summary_ci()``). Without ``n_boot`` the accessors raise as fairlearn's do.
    """

    def __init__(self, *args: Any, bootstrap: BootstrapResult | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._torch_bootstrap = bootstrap

    @property
    def bootstrap(self) -> BootstrapResult | None:
        """The :class:`~monai_multifair.metrics.BootstrapResult`, or ``None`` without ``n_boot``."""
        return self._torch_bootstrap

    @property
    def n_boot(self) -> int | None:
        """Number of bootstrap replicates (``None`` without bootstrap)."""
        return None if self._torch_bootstrap is None else self._torch_bootstrap.n_boot

    @property
    def ci_quantiles(self) -> list[float] | None:
        """The interval quantiles (``None`` without bootstrap)."""
        return None if self._torch_bootstrap is None else list(self._torch_bootstrap.ci_quantiles)

    @property
    def overall_ci(self) -> list:
        """Quantiles of the overall metrics, one Series per quantile (as fairlearn)."""
        if self._torch_bootstrap is None:
            return super().overall_ci
        return self._torch_bootstrap.overall_ci()

    @property
    def by_group_ci(self) -> list:
        """Quantiles of the per-group metrics, one DataFrame per quantile (as fairlearn)."""
        if self._torch_bootstrap is None:
            return super().by_group_ci
        return [frame.reindex(self.by_group.index) for frame in self._torch_bootstrap.by_group_ci()]

    def group_min_ci(self) -> list:
        """Quantiles of ``group_min()``, one Series per quantile (as fairlearn)."""
        if self._torch_bootstrap is None:
            return super().group_min_ci()
        return self._torch_bootstrap.group_min_ci()

    def group_max_ci(self) -> list:
        """Quantiles of ``group_max()``, one Series per quantile (as fairlearn)."""
        if self._torch_bootstrap is None:
            return super().group_max_ci()
        return self._torch_bootstrap.group_max_ci()

    def difference_ci(self, method: str = "between_groups") -> list:
        """Quantiles of ``difference(method)``, one Series per quantile (as fairlearn)."""
        if self._torch_bootstrap is None:
            return super().difference_ci(method)
        return self._torch_bootstrap.difference_ci(method)

    def ratio_ci(self, method: str = "between_groups") -> list:
        """Quantiles of ``ratio(method)``, one Series per quantile (as fairlearn)."""
        if self._torch_bootstrap is None:
            return super().ratio_ci(method)
        return self._torch_bootstrap.ratio_ci(method)


@keyword_only_features
def fairness_metric_frame(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    threshold: float = 0.5,
    n_boot: int | None = None,
    ci_quantiles: Sequence[float] = (0.025, 0.975),
    random_state: int | np.random.RandomState | None = None,
    min_group_size: int = 1,
    pos_label: Any = 1,
    sample_weight: Any = None,
    patient_ids: Any = None,
    alpha: float = 1.0,
    calibration_bins: int = 10,
    device: Any = None,
    min_support: int = MIN_SUPPORT,
) -> FairnessMetricFrame:
    """Per-group AUC, accuracy, TPR, FPR, selection rate, count, prevalence and calibration error.

    The result is a fairlearn ``MetricFrame`` (subclass :class:`FairnessMetricFrame`) with columns
    :data:`METRIC_NAMES`, overall and by (intersectional) group. Undefined values are NaN, with an
    :class:`UndefinedGroupMetricWarning` naming the groups (see :mod:`monai_multifair.metrics.fairness`).

    Args:
        y_true: ``[N]`` labels (binary values, or class ids for ``[N, C]`` scores).
        y_score: ``[N]`` positive-class probabilities or ``[N, C]`` class probabilities.
        sensitive_features: Series, DataFrame, dict of columns or array; several columns give the
            intersections (every combination, as fairlearn).
        threshold: operating threshold ``t``; predicted positive when ``p >= t``.
        n_boot: number of bootstrap replicates; ``None`` for no intervals.
        ci_quantiles: interval quantiles in ``(0, 1)``.
        random_state: ``None``, ``int`` or ``numpy.random.RandomState``; with the same value the
            intervals equal fairlearn's ``MetricFrame(n_boot=..., random_state=...)``.
        min_group_size: groups with fewer rows are undefined (except ``count``).
        pos_label: positive label (1-D scores) or positive column (2-D scores).
        sample_weight: optional ``[N]`` non-negative weights (every metric except ``count``).
        patient_ids: optional ``[N]`` patient of each sample: the bootstrap resamples patients.
        alpha: ES-AUC disparity scale for ``.bootstrap.summary_ci()``.
        calibration_bins: number of equal-width bins of the calibration error.
        device: torch device of the bootstrap.
        min_support: with ``n_boot``, groups with fewer samples get a
            :class:`~monai_multifair.metrics.SmallGroupWarning` (default 30).

    Returns:
        :class:`FairnessMetricFrame`.

    Example:
        >>> import pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> p = rng.random(300); y = (rng.random(300) < p).astype(int)
        >>> df = pd.DataFrame({"race": rng.choice(["A", "B"], 300), "sex": rng.choice(["F", "M"], 300)})
        >>> mf = fairness_metric_frame(y, p, sensitive_features=df, n_boot=200, random_state=0)
        >>> mf.by_group.shape, len(mf.by_group_ci)
        ((4, 8), 2)
    """
    threshold = check_threshold(threshold)
    min_group_size = check_min_group_size(min_group_size)
    calibration_bins = check_calibration_bins(calibration_bins)
    alpha = check_alpha(alpha)
    pred = prepare_predictions(y_true, y_score, pos_label=pos_label, require_probabilities=True)
    groups = prepare_groups(sensitive_features, pred.n)
    weights = prepare_sample_weight(sample_weight, pred.n)
    if patient_ids is not None and n_boot is None:
        raise MultiFairError("`patient_ids` only changes the bootstrap resampling; set `n_boot` to use it")

    boot = None
    if n_boot is not None:
        boot = bootstrap_fairness(
            pred.labels if pred.multiclass else pred.positive,
            pred.scores if pred.multiclass else pred.p,
            sensitive_features=groups.frame,
            threshold=threshold,
            n_boot=n_boot,
            ci_quantiles=ci_quantiles,
            random_state=random_state,
            patient_ids=patient_ids,
            alpha=alpha,
            min_group_size=min_group_size,
            pos_label=pred.pos_label if pred.multiclass else 1,
            sample_weight=weights,
            calibration_bins=calibration_bins,
            device=device,
            min_support=min_support,
        )
    functions = metric_functions(
        threshold=threshold,
        n_classes=pred.n_classes,
        pos_label=pred.pos_label if pred.multiclass else 1,
        min_group_size=min_group_size,
        calibration_bins=calibration_bins,
    )
    sample_params = None
    if weights is not None:
        sample_params = {name: {"sample_weight": weights} for name in METRIC_NAMES if name != "count"}
    frame = FairnessMetricFrame(
        metrics=functions,
        y_true=pred.labels if pred.multiclass else pred.positive,
        y_pred=pred.scores if pred.multiclass else pred.p,
        sensitive_features=groups.frame,
        sample_params=sample_params,
        bootstrap=boot,
    )
    # Name the undefined groups (the engine knows why: too small, a class missing).
    point = point_estimate(
        pred, groups, threshold=threshold, min_group_size=min_group_size, sample_weight=weights
    )
    warn_undefined(point, METRIC_NAMES, min_group_size, pred.multiclass, stacklevel=4)  # through the wrapper
    return frame
