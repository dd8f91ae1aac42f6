"""Fairness metrics of the field, in fairlearn's shape, with fast bootstrap confidence intervals.

* :func:`fairness_metric_frame`: AUC, accuracy, TPR, FPR, selection rate, count, prevalence and
  calibration error, overall and by (intersectional) group, as a fairlearn ``MetricFrame``; with
  ``n_boot`` its ``*_ci`` accessors hold intervals from the torch bootstrap.
* :func:`group_auc`, :func:`worst_group_auc`, :func:`equity_scaled_auc`,
  :func:`demographic_parity_difference`, :func:`equalized_odds_difference`: single metrics.
* :func:`degenerate_predictions`: the cohort and groups whose decisions at the threshold are all
  negative or all positive (DPD, DEOdds and the rate gaps are then flagged, never read as fair).
* :func:`disparity_tests`: permutation tests of each attribute's gaps, with Holm-adjusted p-values.
* :func:`fit_threshold`: an operating threshold fitted on validation data (Youden's J, prevalence).
* :func:`fairness_summary`: the headline numbers as one dict (the evaluator's per-epoch call).
* :func:`bootstrap_fairness`: vectorised bootstrap (CPU or GPU) of every metric, the gaps, ES-AUC,
  DPD and DEOdds, with fairlearn's ``n_boot`` replicates and quantile rules; optional patient-level
  resampling.

Undefined values are NaN, never a fair-looking substitute; see :mod:`monai_multifair.metrics.fairness`
for the policy and :class:`UndefinedGroupMetricWarning`. Groups below :data:`MIN_SUPPORT` samples
raise a :class:`SmallGroupWarning` in the bootstrap, and unreliable intervals of group-extreme
statistics are flagged (:func:`interval_flags`).
"""

from monai_multifair.metrics._inputs import (
    METRIC_NAMES,
    MIN_SUPPORT,
    SUMMARY_NAMES,
    SmallGroupWarning,
    UndefinedGroupMetricWarning,
)
from monai_multifair.metrics.bootstrap import (
    BootstrapResult,
    bootstrap_fairness,
    bootstrap_seeds,
    interval_flags,
    nanquantile,
)
from monai_multifair.metrics.disparity_tests import TESTED_METRICS, disparity_tests, holm_adjust
from monai_multifair.metrics.fairness import (
    DEGENERATE_METRICS,
    degenerate_predictions,
    demographic_parity_difference,
    equalized_odds_difference,
    equity_scaled_auc,
    fairness_summary,
    group_auc,
    worst_group_auc,
)
from monai_multifair.metrics.frame import FairnessMetricFrame, fairness_metric_frame, metric_functions
from monai_multifair.metrics.thresholds import THRESHOLD_RULES, fit_threshold

__all__ = [
    "DEGENERATE_METRICS",
    "METRIC_NAMES",
    "MIN_SUPPORT",
    "SUMMARY_NAMES",
    "TESTED_METRICS",
    "THRESHOLD_RULES",
    "BootstrapResult",
    "FairnessMetricFrame",
    "SmallGroupWarning",
    "UndefinedGroupMetricWarning",
    "bootstrap_fairness",
    "bootstrap_seeds",
    "degenerate_predictions",
    "demographic_parity_difference",
    "disparity_tests",
    "equalized_odds_difference",
    "equity_scaled_auc",
    "fairness_metric_frame",
    "fairness_summary",
    "fit_threshold",
    "group_auc",
    "holm_adjust",
    "interval_flags",
    "metric_functions",
    "nanquantile",
    "worst_group_auc",
]
