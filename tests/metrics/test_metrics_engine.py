"""The torch engine: sort-once AUC against the core's ``grouped_auc`` and sklearn, weighted sums by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from monai_multifair.core.functional import grouped_auc
from monai_multifair.metrics._inputs import prepare_predictions
from monai_multifair.metrics.group_tensors import (
    DTYPE,
    SortedAuc,
    build_cohort,
    cross_group_summaries,
    metrics_by_group,
)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 40),
    k=st.integers(1, 4),
    b=st.integers(1, 5),
    levels=st.integers(2, 6),
    seed=st.integers(0, 10_000),
)
def test_sorted_auc_equals_grouped_auc_with_ties_and_resample_weights(n, k, b, levels, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (n,), generator=gen).to(DTYPE) / levels  # heavy ties
    positive = torch.rand(n, generator=gen) < 0.5
    groups = torch.randint(0, k, (n,), generator=gen)
    weights = torch.randint(0, 3, (b, n), generator=gen).to(DTYPE)  # bootstrap-like counts, zeros included
    ours = SortedAuc(scores, positive, groups, k)(weights)
    oracle, valid = grouped_auc(scores.unsqueeze(1).expand(n, b), positive, groups, k, weights.t())
    assert torch.equal(torch.isnan(ours), ~valid)
    torch.testing.assert_close(ours[valid], oracle[valid], rtol=0, atol=1e-12)


def test_sorted_auc_matches_sklearn_with_float_weights():
    rng = np.random.default_rng(3)
    n = 500
    x = np.round(rng.random(n), 2)
    y = rng.random(n) < x
    g = rng.integers(0, 3, n)
    w = rng.random(n)
    auc = SortedAuc(torch.tensor(x), torch.tensor(y), torch.tensor(g), 3)(torch.tensor(w).unsqueeze(0))[0]
    for k in range(3):
        m = g == k
        assert auc[k].item() == pytest.approx(roc_auc_score(y[m], x[m], sample_weight=w[m]), abs=1e-12)
    overall = SortedAuc(torch.tensor(x), torch.tensor(y), None, 1)(torch.tensor(w).unsqueeze(0))[0, 0]
    assert overall.item() == pytest.approx(roc_auc_score(y, x, sample_weight=w), abs=1e-12)


def test_sorted_auc_undefined_groups_are_nan_not_half():
    x = torch.tensor([0.1, 0.9, 0.4, 0.3, 0.7], dtype=DTYPE)
    y = torch.tensor([0, 1, 1, 1, 0]).bool()
    g = torch.tensor([0, 0, 1, 1, 3])  # group 1 only positives, group 2 empty, group 3 only a negative
    auc = SortedAuc(x, y, g, 4)(torch.ones(1, 5, dtype=DTYPE))[0]
    assert auc[0].item() == 1.0
    assert torch.isnan(auc[1:]).all()


def test_metrics_by_group_weighted_sums_by_hand():
    # one group, p = [0.2, 0.6, 0.7, 0.4], y = [0, 0, 1, 1], threshold 0.5
    pred = prepare_predictions([0, 0, 1, 1], [0.2, 0.6, 0.7, 0.4])
    cohort = build_cohort(pred, np.zeros(4, dtype=np.int64), 1, threshold=0.5, calibration_bins=2)
    rows = torch.tensor([[1.0, 2.0, 0.0, 1.0]], dtype=DTYPE)  # a resample: row 1 twice, row 2 absent
    out = metrics_by_group(cohort, rows)
    # rows present: (0.2, y0), (0.6, y0) x2, (0.4, y1); yhat = [0, 1, 1, 0]
    assert out["count"][0, 0].item() == 4
    assert out["selection_rate"][0, 0].item() == pytest.approx(2 / 4)
    assert out["tpr"][0, 0].item() == 0.0
    assert out["fpr"][0, 0].item() == pytest.approx(2 / 3)
    assert out["accuracy"][0, 0].item() == pytest.approx(1 / 4)
    assert out["prevalence"][0, 0].item() == pytest.approx(1 / 4)
    # AUC: positive 0.4 beats negative 0.2 once, loses to 0.6 twice -> 1/3
    assert out["auc"][0, 0].item() == pytest.approx(1 / 3)
    # ECE with bins (0, .5], (.5, 1]: bin0 = {0.2 (y0), 0.4 (y1)} gap |1 - 0.6| ; bin1 = {0.6 x2 (y0)} gap |0 - 1.2|
    assert out["calibration_error"][0, 0].item() == pytest.approx((0.4 + 1.2) / 4)
    assert out["calibration_error"][0, 1].item() == out["calibration_error"][0, 0].item()  # overall column


def test_metrics_by_group_min_group_size_and_empty_groups():
    pred = prepare_predictions([0, 1, 0, 1, 1], [0.2, 0.6, 0.7, 0.4, 0.9])
    cohort = build_cohort(pred, np.array([0, 0, 0, 0, 2]), 3, threshold=0.5, calibration_bins=10)
    out = metrics_by_group(cohort, torch.ones(1, 5, dtype=DTYPE), min_group_size=2)
    assert out["count"][0].tolist()[:1] == [4.0] and np.isnan(out["count"][0, 1].item())
    assert out["count"][0, 2].item() == 1  # count stays defined below the minimum support
    for name in ("auc", "accuracy", "selection_rate", "prevalence"):
        assert np.isnan(out[name][0, 1].item()) and np.isnan(out[name][0, 2].item())
        assert not np.isnan(out[name][0, 0].item())


def test_summaries_need_two_defined_groups():
    metrics = {
        "auc": torch.tensor([[0.8, np.nan, 0.75]], dtype=DTYPE),
        "tpr": torch.tensor([[0.5, 0.7, 0.6]], dtype=DTYPE),
        "fpr": torch.tensor([[0.1, np.nan, 0.1]], dtype=DTYPE),
        "selection_rate": torch.tensor([[0.3, 0.6, 0.4]], dtype=DTYPE),
    }
    out = cross_group_summaries(metrics, alpha=1.0)
    # one defined group AUC: no disparity measurable -> NaN, never a fair-looking 0 / overall AUC
    assert np.isnan(out["es_auc"].item()) and np.isnan(out["auc_gap"].item())
    assert np.isnan(out["worst_group_auc"].item())
    # FPR has one defined group -> its gap, hence DEOdds, is undefined
    assert np.isnan(out["deodds"].item())
    assert out["dpd"].item() == pytest.approx(0.3)
