"""``AuditReport``: a fairness audit of a model's predictions, as HTML, Markdown and JSON.

The report holds, per (intersectional) group: the cohort composition, every metric of
:func:`~monai_multifair.metrics.fairness_metric_frame` with bootstrap intervals, the gaps between
groups, ES-AUC / worst-group AUC / DPD / DEOdds, ROC and calibration curves, the selection rate at
the operating threshold, notes on undefined metrics and, when given, the training statistics of the
MultiFair modulator (modality-by-group guide AUCs and modulation factors over training).

It also names degenerate predictions (a group, or the cohort, with no positive or no negative
decision at the threshold: DPD, DEOdds and the selection-rate / TPR / FPR gaps are then flagged, see
:func:`~monai_multifair.metrics.degenerate_predictions`), and tests each attribute's gaps for
significance (permutation tests with Holm-adjusted p-values, :func:`~monai_multifair.metrics.disparity_tests`).
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn.metrics as skm

from monai_multifair.atomic_io import atomic_write_text
from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.metrics import (
    DEGENERATE_METRICS,
    METRIC_NAMES,
    MIN_SUPPORT,
    SUMMARY_NAMES,
    FairnessMetricFrame,
    disparity_tests,
    fairness_metric_frame,
)
from monai_multifair.metrics._inputs import (
    calibration_bin_ids,
    calibration_edges,
    check_calibration_bins,
    prepare_groups,
    prepare_predictions,
    prepare_sample_weight,
)
from monai_multifair.metrics.bootstrap import _gap
from monai_multifair.metrics.fairness import DEGENERATE_GROUP_METRICS, find_degenerate, point_estimate
from monai_multifair.report import render
from monai_multifair.report.training import TrainingStats, parse_training_stats

__all__ = ["AuditReport"]

_TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def _clean(value: Any) -> Any:
    """JSON-ready copy: NaN/inf -> None, numpy scalars/arrays -> Python, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _interval(estimate: float, bounds: Sequence[float] | None, flag: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"estimate": estimate}
    if bounds is not None:
        out["ci"] = list(bounds)
    if flag is not None:
        out["ci_flag"] = flag
    return out


def _check_texts(title: Any, threshold_source: Any) -> None:
    """``title`` and ``threshold_source`` (when given) must be non-empty strings."""
    if not isinstance(title, str) or not title.strip():
        raise MultiFairError(f"expected a non-empty string `title`, got {title!r}")
    if threshold_source is not None and (
        not isinstance(threshold_source, str) or not threshold_source.strip()
    ):
        raise MultiFairError(f"expected a non-empty string `threshold_source`, got {threshold_source!r}")


def _metric_frame_and_warnings(
    y_true: Any, y_score: Any, **kwargs: Any
) -> tuple[FairnessMetricFrame, list[str]]:
    """The metric frame and, as report notes, the warnings computing it raised (re-raised for the caller)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = fairness_metric_frame(y_true, y_score, **kwargs)
    notes = [str(w.message) for w in caught]
    for w in caught:  # still tell the caller (of from_predictions), as the metric functions would
        warnings.warn(w.message, w.category, stacklevel=3)
    return frame, notes


def _metric_intervals(frame: FairnessMetricFrame, labels: Sequence[str]) -> dict[str, Any]:
    """``{"overall": {metric: interval}, "by_group": {group: {metric: interval}}}`` of every metric."""
    by_group = frame.by_group.set_axis(labels, axis=0)
    estimates = by_group[list(METRIC_NAMES)].to_numpy(dtype=float)
    if frame.bootstrap is not None:
        group_bounds = np.stack([ci[list(METRIC_NAMES)].to_numpy(dtype=float) for ci in frame.by_group_ci])
        overall_bounds = np.stack([ci[list(METRIC_NAMES)].to_numpy(dtype=float) for ci in frame.overall_ci])
    no_boot = frame.bootstrap is None
    return {
        "overall": {
            m: _interval(frame.overall[m], None if no_boot else overall_bounds[:, j].tolist())
            for j, m in enumerate(METRIC_NAMES)
        },
        "by_group": {
            label: {
                m: _interval(estimates[g, j], None if no_boot else group_bounds[:, g, j].tolist())
                for j, m in enumerate(METRIC_NAMES)
            }
            for g, label in enumerate(labels)
        },
    }


def _summary_intervals(point_summary: Any, boot: Any) -> dict[str, Any]:
    """``{summary statistic: interval}`` (ES-AUC, worst-group AUC, DPD, DEOdds...) with the bootstrap's flags."""
    summary_ci = None if boot is None else boot.summary_ci()
    return {
        name: _interval(
            point_summary[name],
            None if summary_ci is None else summary_ci.loc[name, list(boot.ci_quantiles)].tolist(),
            None if summary_ci is None else summary_ci.loc[name, "ci_flag"],
        )
        for name in SUMMARY_NAMES
    }


def _gap_intervals(by_group: pd.DataFrame, boot: Any) -> dict[str, Any]:
    """``{metric: interval}`` of the largest gap between groups of every metric but ``count``."""
    gap_names = [m for m in METRIC_NAMES if m != "count"]
    if boot is None:
        values = by_group[gap_names].to_numpy(dtype=float)
        return {m: _interval(v, None) for m, v in zip(gap_names, _gap(values, axis=0), strict=True)}
    gap_table = boot.gap_ci()
    return {
        m: _interval(
            gap_table.loc[m, "estimate"],
            gap_table.loc[m, list(boot.ci_quantiles)].tolist(),
            gap_table.loc[m, "ci_flag"],
        )
        for m in gap_names
    }


def _interval_sections(
    frame: FairnessMetricFrame,
    pred: Any,
    groups: Any,
    *,
    threshold: float,
    alpha: float,
    min_group_size: int,
    calibration_bins: int,
    sample_weight: np.ndarray | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, str]]:
    """The ``metrics``, ``summary`` and ``gaps`` sections with intervals, and the degenerate predictions."""
    point = point_estimate(
        pred,
        groups,
        threshold=threshold,
        alpha=alpha,
        min_group_size=min_group_size,
        calibration_bins=calibration_bins,
        sample_weight=sample_weight,
    )
    labels = list(groups.labels)
    metrics = _metric_intervals(frame, labels)
    summary = _summary_intervals(point.summary, frame.bootstrap)
    gaps = _gap_intervals(frame.by_group.set_axis(labels, axis=0), frame.bootstrap)
    degenerate = find_degenerate(
        pred.p, groups.ids, labels, threshold, min_group_size=min_group_size, sample_weight=sample_weight
    )
    return metrics, summary, gaps, degenerate


def _settings(
    pred: Any,
    groups: Any,
    boot: Any,
    *,
    threshold: float,
    threshold_source: str | None,
    n_boot: int | None,
    random_state: Any,
    alpha: float,
    min_group_size: int,
    calibration_bins: int,
    weighted: bool,
    n_permutations: int | None,
) -> dict[str, Any]:
    """The report's ``settings`` section: the data's shape and every setting the statistics used."""
    return {
        "n_samples": pred.n,
        "sensitive_features": groups.names,
        "num_groups": groups.num_groups,
        "threshold": float(threshold),
        "threshold_source": threshold_source or "fixed",
        "pos_label": pred.pos_label if not isinstance(pred.pos_label, np.generic) else pred.pos_label.item(),
        "n_classes": pred.n_classes,
        "n_boot": n_boot,
        "ci_quantiles": None if boot is None else list(boot.ci_quantiles),
        "random_state": random_state if isinstance(random_state, (int, type(None))) else "RandomState",
        "resampling": None if boot is None else boot.resampling,
        "alpha": float(alpha),
        "min_group_size": int(min_group_size),
        "min_support": None if boot is None else boot.min_support,
        "calibration_bins": calibration_bins,
        "weighted": weighted,
        "n_permutations": n_permutations,
    }


def _mark_degenerate(
    degenerate: dict[str, str], summary: dict[str, Any], gaps: dict[str, Any], threshold: float
) -> str:
    """Flag the statistics a constant decision makes meaningless; return the note that says why."""
    for name in DEGENERATE_METRICS:
        summary[name]["degenerate"] = True
    for name in DEGENERATE_GROUP_METRICS:
        gaps[name]["degenerate"] = True
    return (
        f"degenerate predictions at threshold {threshold:g}: "
        + "; ".join(f"{label}: {reason}" for label, reason in degenerate.items())
        + ". DPD, DEOdds and the selection-rate, TPR and FPR gaps describe a constant decision there, "
        "not a fair model (marked (degenerate)); choose the threshold on validation data "
        "(evaluation.threshold: youden or prevalence) or check the model's scores."
    )


def _significance_tests(pred: Any, groups: Any, *, random_state: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The permutation tests of each attribute's gaps, as records (seeded with ``random_state`` or 0)."""
    table = disparity_tests(
        pred.labels if pred.multiclass else pred.positive,
        pred.scores if pred.multiclass else pred.p,
        sensitive_features=groups.frame,
        random_state=random_state if isinstance(random_state, numbers.Integral) and random_state >= 0 else 0,
        pos_label=pred.pos_label if pred.multiclass else 1,
        **kwargs,
    )
    return table.to_dict(orient="records")


def _weak_guide_notes(training: TrainingStats | None) -> list[str]:
    """A note naming the guide heads whose AUCs stay near or below chance (none without guide AUCs)."""
    if training is None or not training.guide_group_auc:
        return []
    smoothed = training.epoch_guide_auc()
    weak = [
        f"{m}/{g} {v:.3f} ({smoothed['status'][m][g]})"
        for m, by_group in smoothed["mean"].items()
        for g, v in by_group.items()
        if smoothed["status"][m][g]
    ]
    if not weak:
        return []
    return [
        f"guide AUCs near or below chance ({smoothed['window']}): {', '.join(weak)}. The guide heads "
        "have not learned these modalities yet, so the modality coefficients computed from them rest "
        "on noise (a larger method.options.guide_lr or more epochs may help)."
    ]


def _unreliable_interval_notes(summary: dict[str, Any], gaps: dict[str, Any]) -> list[str]:
    """A note per summary or gap interval the bootstrap flags as unreliable."""
    return [
        f"unreliable bootstrap interval of {section} `{name}`: {entry['ci_flag']}"
        for section, entries in (("summary", summary), ("gaps", gaps))
        for name, entry in entries.items()
        if entry.get("ci_flag")
    ]


def _cohort(pred: Any, groups: Any) -> dict[str, Any]:
    """Cohort composition: per group its attributes, size, share, positives and prevalence; per attribute its counts."""
    counts = np.bincount(groups.ids, minlength=groups.num_groups)
    positives = np.bincount(groups.ids, weights=pred.positive, minlength=groups.num_groups)
    cohort_groups = []
    for g, label in enumerate(groups.labels):
        key = groups.index[g] if isinstance(groups.index, pd.MultiIndex) else (groups.index[g],)
        n_g = int(counts[g])
        cohort_groups.append(
            {
                "group": label,
                "attributes": dict(zip(groups.names, [str(v) for v in key], strict=True)),
                "n": n_g,
                "share": n_g / pred.n,
                "positives": int(positives[g]),
                "prevalence": positives[g] / n_g if n_g else float("nan"),
            }
        )
    attributes = {
        name: {str(k): int(v) for k, v in groups.frame[name].value_counts(sort=False).sort_index().items()}
        for name in groups.names
    }
    return {"groups": cohort_groups, "attributes": attributes}


def _curves(
    pred: Any, groups: Any, metrics: dict[str, Any], weights: np.ndarray | None, calibration_bins: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """ROC (binary / one-vs-rest positive class) and calibration curves, per group with a defined AUC / ECE."""
    w = np.ones(pred.n) if weights is None else weights
    roc: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    bin_ids = calibration_bin_ids(pred.p, calibration_bins)
    members = [("overall", np.ones(pred.n, dtype=bool))] + [
        (label, groups.ids == g) for g, label in enumerate(groups.labels)
    ]
    for label, mask in members:
        row = metrics["overall"] if label == "overall" else metrics["by_group"][label]
        if math.isnan(row["auc"]["estimate"]):
            continue
        fpr, tpr, _ = skm.roc_curve(pred.positive[mask], pred.p[mask], sample_weight=w[mask])
        roc[label] = {"fpr": fpr, "tpr": tpr, "auc": float(skm.auc(fpr, tpr))}
    for label, mask in members:
        row = metrics["overall"] if label == "overall" else metrics["by_group"][label]
        if math.isnan(row["calibration_error"]["estimate"]):
            continue
        wsum = np.bincount(bin_ids[mask], weights=w[mask], minlength=calibration_bins)
        psum = np.bincount(bin_ids[mask], weights=(w * pred.p)[mask], minlength=calibration_bins)
        ysum = np.bincount(bin_ids[mask], weights=(w * pred.positive)[mask], minlength=calibration_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            calibration[label] = {
                "weight": wsum,
                "mean_predicted": np.where(wsum > 0, psum / wsum, np.nan),
                "fraction_positive": np.where(wsum > 0, ysum / wsum, np.nan),
                "ece": row["calibration_error"]["estimate"],
            }
    return roc, calibration


@dataclass
class AuditReport:
    """A fairness audit: build with :meth:`from_predictions` or :meth:`from_predictions_file`.

    Attributes:
        title: report title.
        content: the report as a JSON-ready dict (see :meth:`to_dict`).
        metric_frame: the underlying :class:`~monai_multifair.metrics.FairnessMetricFrame`.
        training: parsed training statistics, or ``None``.

    Example:
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> p = rng.random(400); y = (rng.random(400) < p).astype(int)
        >>> df = pd.DataFrame({"sex": rng.choice(["F", "M"], 400)})
        >>> report = AuditReport.from_predictions(y, p, sensitive_features=df, n_boot=100, random_state=0)
        >>> metrics = report.to_dict()["metrics"]
        >>> sorted(metrics["by_group"])
        ['sex=F', 'sex=M']
    """

    title: str
    content: dict[str, Any]
    metric_frame: FairnessMetricFrame | None = field(default=None, repr=False)
    training: TrainingStats | None = field(default=None, repr=False)

    @classmethod
    def from_predictions(
        cls,
        y_true: Any,
        y_score: Any,
        *,
        sensitive_features: Any,
        threshold: float = 0.5,
        n_boot: int | None = 1000,
        ci_quantiles: Sequence[float] = (0.025, 0.975),
        random_state: int | np.random.RandomState | None = 0,
        patient_ids: Any = None,
        training_stats: Any = None,
        title: str = "Fairness audit",
        alpha: float = 1.0,
        min_group_size: int = 1,
        pos_label: Any = 1,
        sample_weight: Any = None,
        calibration_bins: int = 10,
        device: Any = None,
        min_support: int = MIN_SUPPORT,
        n_permutations: int | None = 1000,
        threshold_source: str | None = None,
    ) -> AuditReport:
        """Audit predictions ``y_score`` of labels ``y_true`` across ``sensitive_features`` groups.

        Args:
            y_true: ``[N]`` labels (binary, or class ids for ``[N, C]`` scores).
            y_score: ``[N]`` positive-class probabilities or ``[N, C]`` class probabilities.
            sensitive_features: DataFrame/Series/dict/array of group attributes (intersections of
                several columns).
            threshold: operating threshold on the positive-class probability.
            n_boot: bootstrap replicates for the intervals; ``None`` or 0 for none.
            ci_quantiles: interval quantiles.
            random_state: bootstrap seed (fairlearn semantics); default 0 for a reproducible report.
            patient_ids: optional ``[N]`` patient ids: the bootstrap resamples patients.
            training_stats: optional per-step modulator statistics (see
                :mod:`monai_multifair.report.training`).
            title: report title.
            alpha: ES-AUC disparity scale.
            min_group_size: groups with fewer samples are undefined.
            pos_label: positive label (1-D scores) or positive column (2-D scores).
            sample_weight: optional ``[N]`` weights.
            calibration_bins: equal-width bins of the calibration error and curves.
            device: torch device of the bootstrap.
            min_support: groups with fewer samples are named in a note (their intervals are wide, and
                intervals of group-extreme statistics are flagged when unreliable); default 30.
            n_permutations: permutations of the significance test of each attribute's gaps
                (:func:`~monai_multifair.metrics.disparity_tests`, seeded with ``random_state``, or 0
                when that is not an integer); ``None`` or 0 for no test.
            threshold_source: how ``threshold`` was chosen, stated next to it in the report (e.g.
                ``"fitted on the validation split by Youden's J"``); default: "fixed".

        Returns:
            The :class:`AuditReport`.
        """
        _check_texts(title, threshold_source)
        n_boot = None if n_boot == 0 else n_boot
        n_permutations = None if n_permutations == 0 else n_permutations
        calibration_bins = check_calibration_bins(calibration_bins)
        pred = prepare_predictions(y_true, y_score, pos_label=pos_label, require_probabilities=True)
        groups = prepare_groups(sensitive_features, pred.n)
        weights = prepare_sample_weight(sample_weight, pred.n)
        training = None if training_stats is None else parse_training_stats(training_stats)
        frame, notes = _metric_frame_and_warnings(
            y_true,
            y_score,
            sensitive_features=groups.frame,
            threshold=threshold,
            n_boot=n_boot,
            ci_quantiles=ci_quantiles,
            random_state=random_state,
            min_group_size=min_group_size,
            pos_label=pos_label,
            sample_weight=weights,
            patient_ids=patient_ids,
            alpha=alpha,
            calibration_bins=calibration_bins,
            device=device,
            min_support=min_support,
        )
        metrics, summary, gaps, degenerate = _interval_sections(
            frame,
            pred,
            groups,
            threshold=float(threshold),
            alpha=float(alpha),
            min_group_size=int(min_group_size),
            calibration_bins=calibration_bins,
            sample_weight=weights,
        )
        if degenerate:
            notes.insert(0, _mark_degenerate(degenerate, summary, gaps, float(threshold)))
        tests = None
        if n_permutations is not None:
            tests = _significance_tests(
                pred,
                groups,
                threshold=threshold,
                n_permutations=n_permutations,
                random_state=random_state,
                min_group_size=min_group_size,
                calibration_bins=calibration_bins,
                sample_weight=weights,
            )
            if patient_ids is not None:
                notes.append(
                    "the significance tests permute samples, not patients: with several samples per patient "
                    "their p-values are too small"
                )
        notes.extend(_weak_guide_notes(training))
        notes.extend(_unreliable_interval_notes(summary, gaps))
        roc, calibration = _curves(pred, groups, metrics, weights, calibration_bins)

        content = {
            "title": title,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "settings": _settings(
                pred,
                groups,
                frame.bootstrap,
                threshold=threshold,
                threshold_source=threshold_source,
                n_boot=n_boot,
                random_state=random_state,
                alpha=alpha,
                min_group_size=min_group_size,
                calibration_bins=calibration_bins,
                weighted=weights is not None,
                n_permutations=n_permutations,
            ),
            "summary": summary,
            "cohort": _cohort(pred, groups),
            "metrics": metrics,
            "gaps": gaps,
            "degenerate": degenerate,
            "disparity_tests": tests,
            "roc": roc,
            "calibration": {"edges": calibration_edges(calibration_bins), "by_group": calibration},
            "training": None if training is None else training.to_dict(),
            "notes": notes,
        }
        return cls(title=title, content=_clean(content), metric_frame=frame, training=training)

    @classmethod
    def from_evaluator(cls, source: Any, **kwargs: Any) -> AuditReport:
        """The full audit of a MONAI workflow's last evaluation, in one call.

        Args:
            source: a :class:`~monai_multifair.handlers.FairnessEvaluationHandler` that has computed an
                epoch, or the MONAI evaluator (an ignite ``Engine``) it is attached to (exactly one).
            **kwargs: passed to :meth:`from_predictions` (``n_boot``, ``title``, ``training_stats``,
                ``patient_ids`` in the evaluator's sample order...); ``threshold``, ``alpha`` and
                ``min_group_size`` default to the handler's settings.

        Returns:
            The :class:`AuditReport` of the handler's :meth:`predictions`, with the handler's group
            names as the sensitive feature (column named after its ``group_key``).

        Raises:
            MultiFairError: no handler found (or several), or no epoch computed yet.

        Example:
            >>> fairness = FairnessEvaluationHandler(group_key="race", group_labels=["Asian", "Black", "White"])
            >>> evaluator = SupervisedEvaluator(..., val_handlers=[fairness])
            >>> evaluator.run()
            >>> AuditReport.from_evaluator(evaluator, n_boot=1000).to_html("audit.html")
        """
        handler = _fairness_handler(source)
        table = handler.predictions()
        score_cols = (
            ["score"] if "score" in table.columns else [c for c in table.columns if c.startswith("prob_")]
        )
        scores = table[score_cols[0]].to_numpy() if len(score_cols) == 1 else table[score_cols].to_numpy()
        kwargs.setdefault("threshold", handler.threshold)
        kwargs.setdefault("alpha", handler.alpha)
        kwargs.setdefault("min_group_size", handler.min_group_size)
        kwargs.setdefault("title", "Fairness audit of the last evaluation")
        groups = pd.DataFrame({str(handler.group_key): table["group_label"].astype(str).to_numpy()})
        return cls.from_predictions(
            table["label"].to_numpy(),
            scores,
            sensitive_features=groups,
            pos_label=handler.positive_class,
            **kwargs,
        )

    @classmethod
    def from_predictions_file(
        cls,
        path: str | Path,
        *,
        label_col: str,
        score_cols: str | Sequence[str],
        group_cols: str | Sequence[str],
        patient_col: str | None = None,
        weight_col: str | None = None,
        pos_label: Any = 1,
        **kwargs: Any,
    ) -> AuditReport:
        """Audit a predictions table (CSV, TSV or Parquet) with label, score and group columns.

        Args:
            path: ``.csv``/``.tsv`` (optionally ``.gz``) or ``.parquet``/``.pq`` file. Parquet needs
                ``pyarrow`` (or ``fastparquet``) installed.
            label_col: column of the labels.
            score_cols: one column of positive-class probabilities, or ``C`` columns of class
                probabilities (in class order).
            group_cols: sensitive attribute column(s).
            patient_col: optional patient-id column (bootstrap resamples patients).
            weight_col: optional sample-weight column.
            pos_label: positive label; a string is converted to the label column's numeric type.
            **kwargs: passed to :meth:`from_predictions` (``threshold``, ``n_boot``, ``title``...).

        Returns:
            The :class:`AuditReport`.
        """
        table = read_predictions(path)
        score_cols = [score_cols] if isinstance(score_cols, str) else list(score_cols)
        group_cols = [group_cols] if isinstance(group_cols, str) else list(group_cols)
        if not score_cols:
            raise MultiFairError("expected at least one score column in `score_cols`, got none")
        if not group_cols:
            raise MultiFairError("expected at least one group column in `group_cols`, got none")
        named = {"label_col": [label_col], "score_cols": score_cols, "group_cols": group_cols}
        if patient_col is not None:
            named["patient_col"] = [patient_col]
        if weight_col is not None:
            named["weight_col"] = [weight_col]
        for argument, columns in named.items():
            for column in columns:
                if column not in table.columns:
                    raise MultiFairError(
                        f"column {column!r} (from `{argument}`) not found in {str(path)!r}"
                        f"{close_match_hint(column, table.columns)}; columns: {list(map(str, table.columns))}"
                    )
        labels = table[label_col]
        if isinstance(pos_label, str) and pd.api.types.is_numeric_dtype(labels):
            try:
                pos_label = float(pos_label)
            except ValueError as exc:
                raise MultiFairError(
                    f"expected a numeric `pos_label` for the numeric label column {label_col!r}, got {pos_label!r}"
                ) from exc
            if pos_label.is_integer():
                pos_label = int(pos_label)
        for column in score_cols:
            if not pd.api.types.is_numeric_dtype(table[column]):
                values = pd.to_numeric(table[column], errors="coerce")
                bad = np.flatnonzero(values.isna().to_numpy() & table[column].notna().to_numpy())
                got = (
                    f"{table[column].iloc[bad[0]]!r} in row {int(bad[0])}"
                    if bad.size
                    else f"dtype {table[column].dtype}"
                )
                raise MultiFairError(
                    f"expected numeric scores in column {column!r} of {str(path)!r}, got {got}"
                )
        scores = table[score_cols[0]].to_numpy() if len(score_cols) == 1 else table[score_cols].to_numpy()
        kwargs.setdefault("title", f"Fairness audit of {Path(path).name}")
        return cls.from_predictions(
            labels.to_numpy(),
            scores,
            sensitive_features=table[group_cols],
            patient_ids=None if patient_col is None else table[patient_col].to_numpy(),
            sample_weight=None if weight_col is None else table[weight_col].to_numpy(),
            pos_label=pos_label,
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (NaN/undefined as ``None``).

        Keys: ``title``, ``created``, ``settings`` (with ``threshold`` and ``threshold_source``),
        ``summary`` (ES-AUC, worst-group AUC, AUC gap, DPD, DEOdds with ``estimate`` and ``ci``; DPD and
        DEOdds carry ``"degenerate": true`` when predictions are degenerate), ``cohort``, ``metrics``
        (``overall`` and ``by_group``), ``gaps`` (the selection-rate, TPR and FPR gaps flagged alike),
        ``degenerate`` (``{"overall" or group: reason}``, empty when none), ``disparity_tests`` (rows
        ``attribute``, ``metric``, ``groups``, ``gap``, ``p_value``, ``p_holm``; ``None`` without
        permutations), ``roc``, ``calibration``, ``training`` and ``notes``.
        """
        return json.loads(json.dumps(self.content))

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` when given (atomically: complete or absent)."""
        text = json.dumps(self.content, indent=indent, allow_nan=False)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    def to_markdown(self, path: str | Path | None = None) -> str:
        """The report as Markdown tables (no images: see :meth:`to_html`); also written to ``path`` (atomically)."""
        text = render.markdown(self.content)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page with tables and embedded PNG plots; also written to ``path`` (atomically)."""
        text = render.html(self.content)
        if path is not None:
            atomic_write_text(path, text)
        return text


def _fairness_handler(source: Any) -> Any:
    """The fairness evaluation handler ``source`` is, or the one attached to the engine ``source``."""
    # imported here: the handler module imports MONAI and ignite, which reading a predictions file
    # (``multifair report``) does not need
    from monai_multifair.handlers.fairness_evaluation_handler import FairnessEvaluationHandler

    if isinstance(source, FairnessEvaluationHandler):
        return source
    handlers = getattr(source, "_event_handlers", None)
    if not isinstance(handlers, dict):
        raise MultiFairError(
            "expected `source` to be a FairnessEvaluationHandler or the MONAI evaluator it is attached to, "
            f"got {type(source).__name__}"
        )
    found: list[FairnessEvaluationHandler] = []
    for entries in handlers.values():
        for entry in entries:
            owner = getattr(entry[0], "__self__", None)
            if isinstance(owner, FairnessEvaluationHandler) and all(owner is not f for f in found):
                found.append(owner)
    if len(found) != 1:
        raise MultiFairError(
            f"expected exactly one FairnessEvaluationHandler attached to the evaluator `source`, found {len(found)}"
            + (
                "; pass the handler itself"
                if found
                else "; attach one (val_handlers=[...]) and run the evaluator"
            )
        )
    return found[0]


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a predictions table: ``.csv``/``.tsv`` (optionally ``.gz``) or ``.parquet``/``.pq``."""
    path = Path(path)
    if not path.is_file():
        raise MultiFairError(f"predictions file {str(path)!r} does not exist or is not a file")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = _TABLE_SUFFIXES.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise MultiFairError(
            f"expected a predictions file ending in {sorted(_TABLE_SUFFIXES)} (optionally .gz), got {path.name!r}"
        )
    if kind == "parquet":
        if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
            raise MultiFairError(
                f"reading Parquet file {path.name!r} needs pyarrow or fastparquet, neither is installed; "
                "run `pip install pyarrow` or convert the file to CSV"
            )
        table = pd.read_parquet(path)
        if len(table) == 0:
            raise MultiFairError(f"predictions file {str(path)!r} has no rows")
        return table
    try:
        table = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except pd.errors.EmptyDataError:
        raise MultiFairError(f"predictions file {str(path)!r} is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        message = str(exc).replace("\n", " ")
        raise MultiFairError(f"could not parse {str(path)!r} as {kind.upper()}: {message}") from None
    if len(table) == 0:
        raise MultiFairError(
            f"predictions file {str(path)!r} has a header ({', '.join(map(str, table.columns))}) but no rows"
        )
    return table
