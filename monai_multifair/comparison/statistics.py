"""Intervals and ranks of the leaderboard: paired t intervals over seeds, the corrected resampled t interval
over cross-validation folds, and mean ranks across datasets.

- :func:`paired_t_interval`: the mean of per-seed differences ``d_i = method_i - baseline_i`` with the
  Student-t interval ``mean +- t_{n-1, (1+level)/2} * s / sqrt(n)`` (valid when the seeds are independent
  draws: a new synthetic cohort per seed, or training seeds on a fixed split, where the interval is then
  conditional on that split).
- :func:`corrected_resampled_t_interval`: for folds of repeated cross-validation, whose training sets
  overlap, Nadeau & Bengio (2003) replace ``1 / n`` by ``1 / n + n_test / n_train`` in the variance of
  the mean: ``mean +- t_{n-1, (1+level)/2} * sqrt((1 / n + n_test / n_train) * s^2)``.
- :func:`mean_ranks`: per dataset, rank the methods on a metric (1 = best, ties share the mean rank),
  then average each method's rank over the datasets.

Undefined values (NaN) are left out and counted; an interval needs at least two defined values.

A t interval assumes a normal mean; with few values it can reach past the metric's range (two seeds gave
``AUC 0.569 [-1.508, 2.646]``). Given ``bounds`` (``(0, 1)`` for an AUC, ``(-1, 1)`` for a difference of
two), the interval is cut at the bounds and marked ``"clipped": True`` so that tables can say so.
:data:`MIN_SEEDS` is the number of values below which the leaderboard marks no difference significant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from monai_multifair.errors import MultiFairError

__all__ = ["MIN_SEEDS", "corrected_resampled_t_interval", "mean_ranks", "paired_t_interval", "t_interval"]

#: Fewer defined values than this and the leaderboard marks no difference as significant (▲/▼) and says
#: that it cannot name a method: with 2-4 seeds the t quantile is 2.8-12.7 and the spread of the seeds
#: is itself a guess, so an interval that excludes 0 is weak evidence.
MIN_SEEDS = 5


def _check_level(level: float) -> None:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise MultiFairError(f"expected `level` in (0, 1), got {level!r}")


def t_interval(
    values: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    variance_factor: float | None = None,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Mean of ``values`` with a t interval; ``variance_factor`` replaces ``1 / n`` in the variance of the
    mean (default ``1 / n``).

    Args:
        values: the values (NaN: undefined, left out and counted).
        level: confidence level.
        variance_factor: replaces ``1 / n`` in the variance of the mean.
        bounds: ``(lowest, highest)`` value the quantity can take; the interval is cut there.

    Returns:
        ``{"mean", "low", "high", "n", "undefined", "p", "clipped"}``: ``p`` is the two-sided p-value of
        ``mean = 0`` (NaN with fewer than two defined values, or zero spread); ``clipped`` says that the
        t interval reached past ``bounds`` and was cut there.

    Example:
        >>> r = t_interval([0.9, 0.2], bounds=(0.0, 1.0))  # two seeds: t_{1, 0.975} = 12.7
        >>> r["low"], r["high"], r["clipped"]
        (0.0, 1.0, True)
    """
    _check_level(level)
    if bounds is not None and not (
        len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds) and bounds[0] < bounds[1]
    ):
        raise MultiFairError(f"expected `bounds` to be (low, high) with low < high, got {bounds!r}")
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    n = len(defined)
    out: dict[str, Any] = {
        "mean": float(defined.mean()) if n else math.nan,
        "low": math.nan,
        "high": math.nan,
        "n": n,
        "undefined": int(len(values) - n),
        "p": math.nan,
        "clipped": False,
    }
    if n < 2:
        return out
    factor = 1.0 / n if variance_factor is None else float(variance_factor)
    se = math.sqrt(factor * defined.var(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    out["low"], out["high"] = out["mean"] - half, out["mean"] + half
    if bounds is not None and (out["low"] < bounds[0] or out["high"] > bounds[1]):
        out["low"], out["high"] = max(out["low"], float(bounds[0])), min(out["high"], float(bounds[1]))
        out["clipped"] = True
    if se > 0:
        out["p"] = float(2 * stats.t.sf(abs(out["mean"]) / se, n - 1))
    return out


def paired_t_interval(
    method: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Mean paired difference ``method - baseline`` over seeds with its Student-t interval.

    Args:
        method: per-seed values of the method.
        baseline: per-seed values of the baseline, in the same seed order.
        level: confidence level.
        bounds: the range of a difference (``(-1, 1)`` for two metrics in ``[0, 1]``); see :func:`t_interval`.

    Returns:
        See :func:`t_interval` (pairs with an undefined side are left out and counted).

    Raises:
        MultiFairError: the two sequences differ in length.

    Example:
        >>> r = paired_t_interval([0.82, 0.85, 0.84], [0.80, 0.81, 0.83])
        >>> round(r["mean"], 4), r["n"]
        (0.0233, 3)
    """
    method, baseline = np.asarray(method, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if method.shape != baseline.shape or method.ndim != 1:
        raise MultiFairError(
            f"expected `method` and `baseline` to be 1-d and of equal length, got shapes {method.shape} and "
            f"{baseline.shape}"
        )
    return t_interval(method - baseline, level=level, bounds=bounds)


def corrected_resampled_t_interval(
    values: Sequence[float] | np.ndarray,
    test_train_ratio: float,
    *,
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Mean over cross-validation folds with the corrected resampled t interval (Nadeau & Bengio 2003).

    Args:
        values: one value (or paired difference) per test fold.
        test_train_ratio: ``n_test / n_train`` of a fold, > 0 (``1 / (K - 1)`` for K-fold).
        level: confidence level.
        bounds: the quantity's range; see :func:`t_interval`.

    Returns:
        See :func:`t_interval`.
    """
    if (
        isinstance(test_train_ratio, bool)
        or not isinstance(test_train_ratio, (int, float))
        or test_train_ratio <= 0
    ):
        raise MultiFairError(f"expected `test_train_ratio` > 0, got {test_train_ratio!r}")
    n = int(np.sum(~np.isnan(np.asarray(values, dtype=np.float64))))
    factor = 1.0 / n + test_train_ratio if n else None
    return t_interval(values, level=level, variance_factor=factor, bounds=bounds)


def mean_ranks(
    scores: Mapping[str, Mapping[str, float]], *, higher_is_better: bool = True
) -> dict[str, dict[str, Any]]:
    """Mean rank of each method over datasets (1 = best; ties share the mean of their ranks).

    Args:
        scores: ``{dataset: {method: value}}``; a NaN value ranks last on its dataset (it is not a
            good number), and a method missing from a dataset is not ranked there.
        higher_is_better: the metric's direction.

    Returns:
        ``{method: {"mean_rank", "n_datasets", "ranks": {dataset: rank}}}``.

    Examples:
        >>> ranks = mean_ranks({"a": {"x": 0.9, "y": 0.8}, "b": {"x": 0.7, "y": 0.7}})
        >>> ranks.get("x").get("mean_rank")
        1.25
    """
    per_method: dict[str, dict[str, float]] = {}
    for dataset, values in scores.items():
        names = list(values)
        raw = np.array([values[m] for m in names], dtype=np.float64)
        keyed = -raw if higher_is_better else raw.copy()
        keyed[np.isnan(keyed)] = np.inf
        ranks = stats.rankdata(keyed, method="average")
        for name, rank in zip(names, ranks):
            per_method.setdefault(name, {})[dataset] = float(rank)
    return {
        name: {"mean_rank": float(np.mean(list(r.values()))), "n_datasets": len(r), "ranks": r}
        for name, r in per_method.items()
    }
