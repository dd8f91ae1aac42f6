"""Significance of each attribute's disparities: permutation tests with Holm's correction.

For an attribute ``a`` (one sensitive-feature column, and their intersection when there are several)
and a per-group metric ``m`` (AUC, selection rate, TPR, FPR, calibration error), the statistic is the
gap ``T = max_g m_g - min_g m_g`` over the groups where ``m_g`` is defined (the gap of the audit
report). Under the null hypothesis "the metric does not depend on ``a``", the group labels are
exchangeable, so the test permutes them across samples (labels and scores stay together):

``p = (1 + #{b : T_b >= T}) / (1 + B)``

with ``B`` permutations (Phipson & Smyth, 2010: never 0). Permutation ``b`` of an attribute is
``numpy.random.default_rng(random_state).permutation(N)``, drawn in order (a fresh generator per
attribute), and every metric of that attribute uses the same permutations. ``T`` is undefined (NaN,
no p-value) when fewer than two groups have a defined metric; a permuted gap that is undefined counts
as not exceeding ``T``.

Holm's step-down correction then controls the family-wise error over every (attribute, metric) test
with a p-value: with the ``m`` p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value is
``max_{j <= i} min(1, (m - j + 1) p_(j))`` (as ``statsmodels.stats.multitest.multipletests(method="holm")``).

Samples are treated as exchangeable: with several samples per patient the test is anti-conservative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics._inputs import (
    calibration_bin_ids,
    check_calibration_bins,
    check_int,
    check_min_group_size,
    check_threshold,
    keyword_only_features,
    prepare_groups,
    prepare_predictions,
    prepare_sample_weight,
)

__all__ = ["TESTED_METRICS", "disparity_tests", "holm_adjust"]

#: Per-group metrics whose gaps are tested.
TESTED_METRICS: tuple[str, ...] = ("auc", "selection_rate", "tpr", "fpr", "calibration_error")
#: Cells of one block of permutations x groups x distinct scores (bounds the memory of the AUC).
_BLOCK_CELLS = 4_000_000


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (NaN entries stay NaN and do not count in ``m``).

    Example:
        >>> holm_adjust([0.01, 0.04, 0.03]).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size
    if m == 0:
        return out
    order = defined[np.argsort(p[defined], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def _group_metrics(
    ids: np.ndarray,
    k: int,
    positive: np.ndarray,
    p: np.ndarray,
    selected: np.ndarray,
    weight: np.ndarray,
    score_rank: np.ndarray,
    n_scores: int,
    bin_ids: np.ndarray,
    n_bins: int,
    min_group_size: int,
    with_auc: bool,
) -> dict[str, np.ndarray]:
    """``{metric: [B, K]}`` for group assignments ``ids`` ``[B, N]`` (NaN where undefined)."""
    b = ids.shape[0]
    flat = (np.arange(b)[:, None] * k + ids).ravel()

    def sums(values: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=np.broadcast_to(values, ids.shape).ravel(), minlength=b * k).reshape(
            b, k
        )

    rows = sums(np.ones_like(p))
    n = sums(weight)
    pos = sums(weight * positive)
    neg = n - pos
    sel = sums(weight * selected)
    sel_pos = sums(weight * selected * positive)
    big = rows >= max(min_group_size, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "selection_rate": np.where(big & (n > 0), sel / n, np.nan),
            "tpr": np.where(big & (pos > 0), sel_pos / pos, np.nan),
            "fpr": np.where(big & (neg > 0), (sel - sel_pos) / neg, np.nan),
        }
        cells = (flat * n_bins + np.broadcast_to(bin_ids, ids.shape).ravel()).astype(np.int64)
        residual = np.bincount(
            cells,
            weights=np.broadcast_to(weight * (positive - p), ids.shape).ravel(),
            minlength=b * k * n_bins,
        ).reshape(b, k, n_bins)
        out["calibration_error"] = np.where(big & (n > 0), np.abs(residual).sum(-1) / n, np.nan)
        if with_auc:
            cells = (flat * n_scores + np.broadcast_to(score_rank, ids.shape).ravel()).astype(np.int64)
            size = b * k * n_scores
            w_pos = np.bincount(cells, np.broadcast_to(weight * positive, ids.shape).ravel(), size)
            w_neg = np.bincount(cells, np.broadcast_to(weight * (1 - positive), ids.shape).ravel(), size)
            w_pos, w_neg = w_pos.reshape(b, k, n_scores), w_neg.reshape(b, k, n_scores)
            below = np.cumsum(w_neg, axis=-1) - w_neg
            wins = (w_pos * (below + 0.5 * w_neg)).sum(-1)
            out["auc"] = np.where(big & (pos > 0) & (neg > 0), wins / (pos * neg), np.nan)
    return out


def _gaps(values: np.ndarray) -> np.ndarray:
    """``max - min`` over the last axis of the defined entries; NaN with fewer than two."""
    defined = (~np.isnan(values)).sum(-1)
    with np.errstate(invalid="ignore"):
        filled_max = np.where(np.isnan(values), -np.inf, values).max(-1)
        filled_min = np.where(np.isnan(values), np.inf, values).min(-1)
    return np.where(defined >= 2, filled_max - filled_min, np.nan)


@keyword_only_features
def disparity_tests(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    threshold: float = 0.5,
    n_permutations: int = 1000,
    random_state: int = 0,
    metrics: Sequence[str] = TESTED_METRICS,
    min_group_size: int = 1,
    calibration_bins: int = 10,
    sample_weight: Any = None,
    pos_label: Any = 1,
) -> pd.DataFrame:
    """Permutation test of each attribute's gap in each metric, with Holm-adjusted p-values.

    See the module docstring for the statistic, the permutations and the correction.

    Args:
        y_true: ``[N]`` labels (binary, or class ids for ``[N, C]`` scores).
        y_score: ``[N]`` or ``[N, C]`` probabilities in ``[0, 1]``.
        sensitive_features: DataFrame / Series / dict / array of attributes; each column is tested,
            and their intersection too when there are several.
        threshold: operating threshold (predicted positive when ``p >= threshold``).
        n_permutations: ``B >= 1`` permutations per attribute.
        random_state: seed (an integer >= 0) of the permutations.
        metrics: metrics to test, a subset of :data:`TESTED_METRICS`. For ``[N, C]`` scores with
            ``C >= 3`` the AUC is not tested (the report's AUC is a one-vs-rest macro average).
        min_group_size: groups with fewer samples have undefined metrics.
        calibration_bins: equal-width bins of the calibration error.
        sample_weight: optional ``[N]`` weights.
        pos_label: positive label (1-D scores) or positive column (2-D scores).

    Returns:
        One row per (attribute, metric): ``attribute``, ``metric``, ``groups`` (defined groups),
        ``gap`` (observed ``T``), ``p_value``, ``p_holm`` (NaN where ``T`` is undefined).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.choice(["F", "M"], 400); y = rng.integers(0, 2, 400)
        >>> p = 0.2 * y + 0.5 * (a == "M") + 0.3 * rng.random(400)  # men are selected far more often
        >>> table = disparity_tests(y, p, sensitive_features={"sex": a}, n_permutations=200)
        >>> table.set_index("metric").loc["selection_rate", "p_holm"] < 0.05
        np.True_
    """
    pred = prepare_predictions(y_true, y_score, pos_label=pos_label, require_probabilities=True)
    groups = prepare_groups(sensitive_features, pred.n)
    threshold = check_threshold(threshold)
    n_permutations = check_int(n_permutations, "n_permutations", 1)
    random_state = check_int(random_state, "random_state", 0)
    min_group_size = check_min_group_size(min_group_size)
    calibration_bins = check_calibration_bins(calibration_bins)
    weight = prepare_sample_weight(sample_weight, pred.n)
    weight = np.ones(pred.n) if weight is None else weight
    if isinstance(metrics, str) or not metrics:
        raise MultiFairError(
            f"expected `metrics` to be a non-empty list of {list(TESTED_METRICS)}, got {metrics!r}"
        )
    unknown = [m for m in metrics if m not in TESTED_METRICS]
    if unknown:
        raise MultiFairError(f"unknown metric(s) {unknown} in `metrics`; known: {', '.join(TESTED_METRICS)}")
    metrics = [m for m in TESTED_METRICS if m in metrics and not (m == "auc" and pred.multiclass)]
    with_auc = "auc" in metrics

    positive = pred.positive.astype(float)
    selected = (pred.p >= threshold).astype(float)
    uniques, score_rank = np.unique(pred.p, return_inverse=True)
    bin_ids = calibration_bin_ids(pred.p, calibration_bins)
    attributes: list[tuple[str, np.ndarray, int]] = []
    for name in groups.names:
        codes, values = pd.factorize(groups.frame[name], sort=True)
        attributes.append((name, codes.astype(np.int64), len(values)))
    if len(groups.names) > 1:
        attributes.append((" & ".join(groups.names), groups.ids, groups.num_groups))

    def evaluate(ids: np.ndarray, k: int) -> dict[str, np.ndarray]:
        return _group_metrics(
            ids, k, positive, pred.p, selected, weight, score_rank, uniques.size, bin_ids,
            calibration_bins, min_group_size, with_auc,
        )  # fmt: skip

    rows = []
    for name, ids, k in attributes:
        observed = evaluate(ids[None, :], k)
        gaps = {m: float(_gaps(observed[m])[0]) for m in metrics}
        exceed = dict.fromkeys(metrics, 0)
        rng = np.random.default_rng(random_state)
        block = max(1, _BLOCK_CELLS // max(1, k * (uniques.size if with_auc else calibration_bins)))
        done = 0
        while done < n_permutations:
            size = min(block, n_permutations - done)
            permuted = np.stack([ids[rng.permutation(pred.n)] for _ in range(size)])
            values = evaluate(permuted, k)
            for m in metrics:
                if not np.isnan(gaps[m]):
                    exceed[m] += int(np.sum(_gaps(values[m]) >= gaps[m] - 1e-12))
            done += size
        for m in metrics:
            defined = int((~np.isnan(observed[m][0])).sum())
            p_value = (1 + exceed[m]) / (1 + n_permutations) if not np.isnan(gaps[m]) else float("nan")
            rows.append(
                {"attribute": name, "metric": m, "groups": defined, "gap": gaps[m], "p_value": p_value}
            )
    table = pd.DataFrame(rows, columns=["attribute", "metric", "groups", "gap", "p_value"])
    table["p_holm"] = holm_adjust(table["p_value"].to_numpy())
    return table
