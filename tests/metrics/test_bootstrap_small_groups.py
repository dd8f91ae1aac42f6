"""Many small groups: the minimum-support warning, flagged intervals, and the vectorised per-group work."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import (
    MIN_SUPPORT,
    SmallGroupWarning,
    UndefinedGroupMetricWarning,
    bootstrap_fairness,
    group_tensors,
    interval_flags,
    nanquantile,
)
from monai_multifair.metrics._inputs import prepare_predictions
from monai_multifair.report import AuditReport


def _many_small_groups(seed: int = 2, groups: int = 50, n: int = 600, signal: float = 0.8):
    """``groups`` groups of about ``n / groups`` rows (the issue's 50 groups of ~12 rows)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1.0, n))))
    return y, p, pd.Series([f"s{v:02d}" for v in g], name="site")


def _bootstrap_quietly(y, p, groups, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = bootstrap_fairness(y, p, sensitive_features=groups, random_state=0, **kwargs)
    return result, caught


def test_small_groups_warn_once_naming_the_smallest_and_the_rule():
    y, p, groups = _many_small_groups()
    result, caught = _bootstrap_quietly(y, p, groups, n_boot=200)
    small = [w for w in caught if issubclass(w.category, SmallGroupWarning)]
    assert len(small) == 1
    message = str(small[0].message)
    counts = groups.value_counts()
    assert message.startswith(f"50 of 50 group(s) have fewer than min_support={MIN_SUPPORT} samples")
    smallest = counts.sort_values(kind="stable").index[0]
    assert f"'site={smallest}' ({counts.min()})" in message
    assert result.small_groups == [f"site={s}" for s in sorted(counts.index)]
    # a subclass of the undefined-metric warning: code collecting group notes collects it too
    assert issubclass(SmallGroupWarning, UndefinedGroupMetricWarning)


def test_every_extreme_interval_contains_its_estimate_or_is_flagged():
    for seed in range(4):
        y, p, groups = _many_small_groups(seed=seed)
        result, _ = _bootstrap_quietly(y, p, groups, n_boot=300)
        for table in (result.summary_ci(), result.gap_ci()):
            lower, upper = table[0.025], table[0.975]
            inside = (lower <= table["estimate"]) & (table["estimate"] <= upper)
            undefined = table["estimate"].isna() | lower.isna()
            for name in table.index[~inside & ~undefined]:
                assert "the estimate lies outside its interval" in table.loc[name, "ci_flag"], (seed, name)


def test_the_worst_group_interval_that_excludes_its_estimate_is_flagged():
    # seed 2: the observed worst-group AUC (0.600) lies above the whole percentile interval [0, 0.556]:
    # every replicate's minimum over 50 noisy group AUCs is lower than the observed minimum.
    y, p, groups = _many_small_groups(seed=2)
    result, _ = _bootstrap_quietly(y, p, groups, n_boot=1000)
    row = result.summary_ci().loc["worst_group_auc"]
    assert row[0.975] < row["estimate"]
    samples = result.summary_samples[:, list(result.summary_ci().index).index("worst_group_auc")]
    share_below = np.mean(samples < row["estimate"]) + 0.5 * np.mean(samples == row["estimate"])
    assert row["ci_flag"] == (
        f"the estimate lies outside its interval; {share_below:.0%} of the replicates lie below the estimate"
    )


def test_large_groups_give_no_warning_and_a_reliable_auc_interval():
    rng = np.random.default_rng(0)
    n = 1500
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    groups = rng.choice(["A", "B", "C"], n)
    result = bootstrap_fairness(y, p, sensitive_features=groups, n_boot=200, random_state=0)  # no warning
    assert result.small_groups == []
    table = result.summary_ci()
    assert table.loc["auc", "ci_flag"] is None
    assert table.loc["auc", 0.025] <= table.loc["auc", "estimate"] <= table.loc["auc", 0.975]


def test_min_support_is_a_setting():
    y, p, groups = _many_small_groups()
    result = bootstrap_fairness(y, p, sensitive_features=groups, n_boot=20, random_state=0, min_support=1)
    assert result.small_groups == [] and result.min_support == 1
    with pytest.raises(MultiFairError, match="expected integer `min_support` >= 1, got 0"):
        bootstrap_fairness(y, p, sensitive_features=groups, n_boot=20, min_support=0)


def test_interval_flags_oracle():
    samples = np.column_stack([np.linspace(0, 1, 101), np.linspace(0, 1, 101), np.full(101, np.nan)])
    flags = interval_flags(
        np.array([0.5, 0.99, 0.5]),
        samples,
        lower=np.array([0.025, 0.025, np.nan]),
        upper=np.array([0.975] * 3),
    )
    # 0.5: half the replicates below, inside the interval; 0.99: 99 of 101 replicates below and one
    # tie (counted one half): 99.5 / 101 = 98.5 %, and above the upper bound; an undefined interval is
    # not flagged (it is already undefined)
    assert flags[0] is None
    assert flags[1] == "the estimate lies outside its interval; 99% of the replicates lie below the estimate"
    assert flags[2] is None


def test_report_marks_flagged_intervals_and_names_small_groups():
    y, p, groups = _many_small_groups(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedGroupMetricWarning)
        report = AuditReport.from_predictions(y, p, sensitive_features=groups, n_boot=300)
    data = report.to_dict()
    assert data["settings"]["min_support"] == MIN_SUPPORT
    assert any(note.startswith("50 of 50 group(s) have fewer than min_support=30") for note in data["notes"])
    worst = data["summary"]["worst_group_auc"]
    assert "ci_flag" in worst
    assert f"unreliable bootstrap interval of summary `worst_group_auc`: {worst['ci_flag']}" in data["notes"]
    text = report.to_markdown()
    line = f"| Worst-group AUC | {worst['estimate']:.3f} [{worst['ci'][0]:.3f}, {worst['ci'][1]:.3f}] (unreliable) |"
    assert line in text
    # plots draw the largest groups only; every group stays in the tables
    html = report.to_html()
    assert "The 12 largest of 50 groups are drawn; every group is in the tables." in html
    assert "The 40 largest of 50 groups are drawn" in html
    assert all(f"| {label} |" in text for label in data["metrics"]["by_group"])


# ---------------------------------------------------------------------------------------------------
# the vectorised pieces against direct computations
@pytest.mark.parametrize("seed", range(5))
def test_nanquantile_equals_numpy_exactly(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((int(rng.integers(1, 60)), 7, 3))
    if seed % 2:
        x = np.round(x, 1)  # ties
    x[rng.random(x.shape) < 0.4] = np.nan
    x[:, 0, 0] = np.nan  # a column without any value
    q = [0.0, 0.025, 0.5, 0.975, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on the all-NaN column
        expected = np.nanquantile(x, q, axis=0)
    np.testing.assert_array_equal(nanquantile(x, q), expected)


@pytest.mark.parametrize("weighted", [False, True])
def test_group_sums_equal_a_loop_over_groups(weighted):
    rng = np.random.default_rng(0)
    n, k = 300, 40  # some of the 40 groups are empty
    ids = rng.integers(0, k - 5, n)
    pred = prepare_predictions(rng.integers(0, 2, n), rng.random(n))
    weights = rng.random(n) if weighted else None
    cohort = group_tensors.build_cohort(
        pred, ids, k, threshold=0.5, calibration_bins=10, sample_weight=weights
    )
    rows = torch.from_numpy(rng.integers(0, 3, (17, n)).astype(np.float64))
    sums = cohort.group_sums(rows)
    counts = cohort.group_counts(rows)
    for g in range(k):
        lo, hi = int(cohort.bounds[g]), int(cohort.bounds[g + 1])
        torch.testing.assert_close(
            sums[:, :, g], rows[:, lo:hi] @ cohort.terms[lo:hi], rtol=1e-12, atol=1e-12
        )
        torch.testing.assert_close(counts[:, g], rows[:, lo:hi].sum(1), rtol=0, atol=0)
