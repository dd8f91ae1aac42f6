"""Intervals and ranks against scipy and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monai_multifair.comparison import (
    corrected_resampled_t_interval,
    mean_ranks,
    paired_t_interval,
    t_interval,
)
from monai_multifair.errors import MultiFairError

METHOD = np.array([0.842, 0.861, 0.838, 0.870, 0.851, 0.829, 0.866, 0.847])
BASELINE = np.array([0.831, 0.850, 0.840, 0.852, 0.849, 0.821, 0.851, 0.836])


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_paired_t_interval_equals_scipy(level: float) -> None:
    result = paired_t_interval(METHOD, BASELINE, level=level)
    test = stats.ttest_rel(METHOD, BASELINE)
    low, high = test.confidence_interval(confidence_level=level)
    assert result["mean"] == pytest.approx(float(np.mean(METHOD - BASELINE)), abs=1e-12)
    assert result["low"] == pytest.approx(low, abs=1e-12)
    assert result["high"] == pytest.approx(high, abs=1e-12)
    assert result["p"] == pytest.approx(test.pvalue, rel=1e-9)
    assert result["n"] == 8 and result["undefined"] == 0


def test_paired_t_interval_leaves_out_undefined_pairs() -> None:
    method = METHOD.copy()
    method[2] = np.nan
    result = paired_t_interval(method, BASELINE)
    keep = ~np.isnan(method)
    low, _ = stats.ttest_rel(method[keep], BASELINE[keep]).confidence_interval()
    assert result["n"] == 7 and result["undefined"] == 1
    assert result["low"] == pytest.approx(low, abs=1e-12)


def test_paired_t_interval_rejects_unequal_lengths() -> None:
    with pytest.raises(MultiFairError, match="equal length"):
        paired_t_interval(METHOD, BASELINE[:-1])


def test_t_interval_needs_two_values_and_a_valid_level() -> None:
    one = t_interval([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["low"]) and math.isnan(one["p"])
    assert math.isnan(t_interval([]).get("mean"))
    with pytest.raises(MultiFairError, match="level"):
        t_interval([0.1, 0.2], level=1.5)


def test_corrected_resampled_t_interval_by_hand() -> None:
    diffs = METHOD - BASELINE
    ratio = 1 / 4  # 5-fold cross-validation: n_test / n_train
    n = len(diffs)
    se = math.sqrt((1 / n + ratio) * np.var(diffs, ddof=1))
    half = stats.t.ppf(0.975, n - 1) * se
    result = corrected_resampled_t_interval(diffs, ratio)
    assert result["low"] == pytest.approx(diffs.mean() - half, abs=1e-12)
    assert result["high"] == pytest.approx(diffs.mean() + half, abs=1e-12)
    assert result["p"] == pytest.approx(2 * stats.t.sf(abs(diffs.mean()) / se, n - 1), rel=1e-9)
    naive = t_interval(diffs)
    assert result["high"] - result["low"] > naive["high"] - naive["low"]  # wider: the folds overlap
    with pytest.raises(MultiFairError, match="test_train_ratio"):
        corrected_resampled_t_interval(diffs, 0)


def test_mean_ranks_by_hand() -> None:
    scores = {
        "a": {"erm": 0.80, "x": 0.85, "y": 0.85},  # x and y tie: rank 1.5 each
        "b": {"erm": 0.70, "x": 0.60, "y": float("nan")},  # NaN ranks last
    }
    ranks = mean_ranks(scores)
    assert ranks["x"]["ranks"] == {"a": 1.5, "b": 2.0}
    assert ranks["erm"]["mean_rank"] == pytest.approx((3 + 1) / 2)
    assert ranks["y"]["mean_rank"] == pytest.approx((1.5 + 3) / 2)
    lower = mean_ranks({"a": {"erm": 0.1, "x": 0.2}}, higher_is_better=False)
    assert lower["erm"]["mean_rank"] == 1.0 and lower["x"]["mean_rank"] == 2.0


def test_t_interval_is_cut_at_the_bounds_and_marked() -> None:
    wide = t_interval([0.9, 0.2], bounds=(0.0, 1.0))
    half = stats.t.ppf(0.975, 1) * np.std([0.9, 0.2], ddof=1) / np.sqrt(2)  # 4.45: past both bounds
    assert (wide["low"], wide["high"], wide["clipped"]) == (0.0, 1.0, True)
    assert wide["mean"] == pytest.approx(0.55) and 0.55 - half < 0 < 1 < 0.55 + half
    values = [0.80, 0.82, 0.81, 0.83, 0.79]
    tight = t_interval(values, bounds=(0.0, 1.0))
    low, high = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert not tight["clipped"] and (tight["low"], tight["high"]) == pytest.approx((low, high))
    one_side = paired_t_interval([1.0, 1.0, 0.6], [0.1, 0.05, 0.1], bounds=(-1.0, 1.0))
    diffs = [0.9, 0.95, 0.5]  # by hand: 0.783 +- 4.303 * 0.142 = [0.172, 1.394]: cut above only
    low, _ = stats.t.interval(0.95, 2, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert one_side["high"] == 1.0 and one_side["low"] == pytest.approx(low) and one_side["clipped"]
    with pytest.raises(MultiFairError, match="`bounds`"):
        t_interval(values, bounds=(1.0, 0.0))
