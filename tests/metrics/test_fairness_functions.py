"""Single fairness metrics and ``fairness_summary`` against sklearn, fairlearn and hand computation."""

from __future__ import annotations

import warnings

import fairlearn.metrics as flm
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from monai_multifair.metrics import (
    UndefinedGroupMetricWarning,
    demographic_parity_difference,
    equalized_odds_difference,
    equity_scaled_auc,
    fairness_summary,
    group_auc,
    worst_group_auc,
)


def _sklearn_group_auc(y, p, keys, w=None):
    out = {}
    for key in sorted(set(keys)):
        m = np.array([k == key for k in keys])
        out[key] = roc_auc_score(y[m], p[m], sample_weight=None if w is None else w[m])
    return out


def test_group_auc_equals_sklearn_per_intersection(cohort_factory):
    y, p, frame = cohort_factory(400, seed=1, ties=True)
    ours = group_auc(y, p, sensitive_features=frame)
    keys = list(zip(frame["race"], frame["sex"], strict=True))
    expected = _sklearn_group_auc(y, p, keys)
    assert list(ours.index) == sorted(expected)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-9)


def test_weighted_group_auc_equals_sklearn(cohort_factory):
    y, p, frame = cohort_factory(300, seed=2)
    w = np.random.default_rng(2).random(300) * 3
    ours = group_auc(y, p, sensitive_features=frame["race"], sample_weight=w)
    for key, value in _sklearn_group_auc(y, p, frame["race"].to_numpy(), w).items():
        assert ours[key] == pytest.approx(value, abs=1e-9)


def test_multiclass_group_auc_is_one_vs_rest_macro():
    rng = np.random.default_rng(4)
    n = 600
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    groups = rng.choice(["u", "v"], n)
    ours = group_auc(labels, probs, sensitive_features=groups)
    for key in ("u", "v"):
        m = groups == key
        assert ours[key] == pytest.approx(roc_auc_score(labels[m], probs[m], multi_class="ovr"), abs=1e-9)


def test_es_auc_worst_group_by_hand(cohort_factory):
    y, p, frame = cohort_factory(500, seed=5)
    per_group = _sklearn_group_auc(y, p, frame["race"].to_numpy())
    overall = roc_auc_score(y, p)
    for alpha in (0.0, 1.0, 2.5):
        expected = overall / (1 + alpha * sum(abs(overall - a) for a in per_group.values()))
        assert equity_scaled_auc(y, p, sensitive_features=frame["race"], alpha=alpha) == pytest.approx(
            expected, abs=1e-9
        )
    assert worst_group_auc(y, p, sensitive_features=frame["race"]) == pytest.approx(
        min(per_group.values()), abs=1e-9
    )


def test_dpd_and_deodds_equal_fairlearn(cohort_factory):
    y, p, frame = cohort_factory(500, seed=6)
    for threshold in (0.3, 0.5, 0.72):
        yhat = (p >= threshold).astype(int)
        assert demographic_parity_difference(
            y, p, sensitive_features=frame, threshold=threshold
        ) == pytest.approx(flm.demographic_parity_difference(y, yhat, sensitive_features=frame), abs=1e-9)
        assert equalized_odds_difference(
            y, p, sensitive_features=frame, threshold=threshold
        ) == pytest.approx(flm.equalized_odds_difference(y, yhat, sensitive_features=frame), abs=1e-9)


def test_weighted_dpd_equals_fairlearn(cohort_factory):
    y, p, frame = cohort_factory(300, seed=7)
    w = np.random.default_rng(7).random(300)
    yhat = (p >= 0.5).astype(int)
    assert demographic_parity_difference(y, p, sensitive_features=frame, sample_weight=w) == pytest.approx(
        flm.demographic_parity_difference(y, yhat, sensitive_features=frame, sample_weight=w), abs=1e-9
    )


def test_one_class_group_is_undefined_and_excluded_with_a_warning(cohort_factory):
    y, p, frame = cohort_factory(300, seed=8)
    groups = frame["race"].to_numpy().copy()
    y = y.copy()
    y[groups == "C"] = 1  # group C has no negatives
    with pytest.warns(UndefinedGroupMetricWarning, match=r"'race=C' \(auc: no negative samples\)"):
        auc = group_auc(y, p, sensitive_features=frame["race"])
    assert np.isnan(auc["C"])  # never 0.5
    defined = _sklearn_group_auc(y[groups != "C"], p[groups != "C"], groups[groups != "C"])
    overall = roc_auc_score(y, p)
    with pytest.warns(UndefinedGroupMetricWarning, match="race=C"):
        es = equity_scaled_auc(y, p, sensitive_features=frame["race"])
    assert es == pytest.approx(overall / (1 + sum(abs(overall - a) for a in defined.values())), abs=1e-9)
    with pytest.warns(UndefinedGroupMetricWarning, match=r"'race=C' \(fpr: no negative samples\)"):
        deodds = equalized_odds_difference(y, p, sensitive_features=frame["race"])
    # fairlearn counts the FPR of group C as 0; here it is left out (its TPR stays in).
    yhat = (p >= 0.5).astype(int)
    keep = groups != "C"
    tpr = flm.MetricFrame(metrics=flm.true_positive_rate, y_true=y, y_pred=yhat, sensitive_features=groups)
    fpr = flm.MetricFrame(
        metrics=flm.false_positive_rate, y_true=y[keep], y_pred=yhat[keep], sensitive_features=groups[keep]
    )
    assert deodds == pytest.approx(max(tpr.difference(), fpr.difference()), abs=1e-9)


def test_deodds_does_not_count_an_undefined_fpr_as_zero():
    # groups a and b: TPR 1 and FPR 1/2; group c has no negatives.
    y = np.array([1, 0, 0, 1, 0, 0, 1, 1])
    p = np.array([0.9, 0.8, 0.1, 0.9, 0.8, 0.1, 0.9, 0.7])
    groups = ["a", "a", "a", "b", "b", "b", "c", "c"]
    with pytest.warns(
        UndefinedGroupMetricWarning, match=r"'sensitive_feature_0=c' \(fpr: no negative samples\)"
    ):
        assert equalized_odds_difference(y, p, sensitive_features=groups) == 0.0
    # fairlearn reads c's FPR as 0 and reports a disparity of 1/2
    assert flm.equalized_odds_difference(y, (p >= 0.5).astype(int), sensitive_features=groups) == 0.5


def test_single_defined_group_gives_nan_summaries():
    y = np.array([0, 1, 0, 1, 1, 1])
    p = np.array([0.2, 0.8, 0.4, 0.6, 0.3, 0.9])
    groups = ["a", "a", "a", "a", "b", "b"]
    with pytest.warns(UndefinedGroupMetricWarning, match="'sensitive_feature_0=b'"):
        assert np.isnan(equity_scaled_auc(y, p, sensitive_features=groups))
    with pytest.warns(UndefinedGroupMetricWarning):
        assert np.isnan(worst_group_auc(y, p, sensitive_features=groups))


def test_min_group_size_marks_small_groups_undefined(cohort_factory):
    y, p, frame = cohort_factory(200, seed=9)
    race = frame["race"].to_numpy().copy()
    race[:4] = "tiny"
    y[:2], y[2:4] = 0, 1
    with pytest.warns(
        UndefinedGroupMetricWarning, match=r"'race=tiny' \(auc: 4 sample\(s\) < min_group_size=5\)"
    ):
        auc = group_auc(y, p, sensitive_features=pd.Series(race, name="race"), min_group_size=5)
    assert np.isnan(auc["tiny"]) and auc.drop("tiny").notna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not np.isnan(group_auc(y, p, sensitive_features=pd.Series(race, name="race"))["tiny"])


def test_fairness_summary_matches_the_single_functions(cohort_factory):
    y, p, frame = cohort_factory(2000, seed=10)
    ids = frame["race"].map({"A": 0, "B": 1, "C": 2}).to_numpy()
    out = fairness_summary(y, p, ids, ["A", "B", "C"], threshold=0.4, alpha=0.5)
    assert set(out) == {"auc", "es_auc", "worst_group_auc", "dpd", "deodds", "group_auc", "degenerate"}
    assert out["degenerate"] == {}
    race = frame["race"]
    assert out["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert out["es_auc"] == pytest.approx(
        equity_scaled_auc(y, p, sensitive_features=race, alpha=0.5), abs=1e-12
    )
    assert out["worst_group_auc"] == pytest.approx(worst_group_auc(y, p, sensitive_features=race), abs=1e-12)
    yhat = (p >= 0.4).astype(int)
    assert out["dpd"] == pytest.approx(
        flm.demographic_parity_difference(y, yhat, sensitive_features=race), abs=1e-9
    )
    assert out["deodds"] == pytest.approx(
        flm.equalized_odds_difference(y, yhat, sensitive_features=race), abs=1e-9
    )
    assert out["group_auc"] == pytest.approx(_sklearn_group_auc(y, p, race.to_numpy()), abs=1e-9)
    # tensors in, ids without labels -> integer keys
    out_t = fairness_summary(torch.tensor(y), torch.tensor(p), torch.tensor(ids), threshold=0.4, alpha=0.5)
    assert list(out_t["group_auc"]) == [0, 1, 2]
    assert out_t["es_auc"] == pytest.approx(out["es_auc"], abs=1e-12)


def test_fairness_summary_with_class_probabilities():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 300)
    p1 = np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1)
    scores = np.stack([1 - p1, p1], axis=1)
    ids = rng.integers(0, 2, 300)
    assert fairness_summary(labels, scores, ids) == fairness_summary(labels, p1, ids)


def test_fairness_summary_empty_group_is_undefined():
    y = np.array([0, 1, 0, 1, 0, 1])
    p = np.array([0.2, 0.8, 0.4, 0.6, 0.1, 0.7])
    with pytest.warns(
        UndefinedGroupMetricWarning, match=r"'mid' \(auc, selection_rate, tpr, fpr: no samples\)"
    ):
        out = fairness_summary(y, p, [0, 0, 0, 2, 2, 2], ["low", "mid", "high"])
    assert np.isnan(out["group_auc"]["mid"]) and out["group_auc"]["low"] == 1.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), perm=st.permutations([0, 1, 2, 3]))
def test_relabelling_groups_permutes_group_auc(seed, perm):
    rng = np.random.default_rng(seed)
    n = 80
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    ids = np.repeat(np.arange(4), n // 4)  # every group non-empty
    y[::4], y[1::4] = 0, 1  # and with both classes
    base = fairness_summary(y, p, ids)
    moved = fairness_summary(y, p, np.asarray(perm)[ids])
    assert moved["group_auc"] == {perm[g]: v for g, v in base["group_auc"].items()}
    for key in ("auc", "es_auc", "worst_group_auc", "dpd", "deodds"):
        assert moved[key] == pytest.approx(base[key], abs=1e-12)
