"""The vectorised bootstrap: fairlearn's replicates and quantiles, patient resampling, devices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn.metrics import MetricFrame
from sklearn.metrics import roc_auc_score

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import (
    METRIC_NAMES,
    SUMMARY_NAMES,
    bootstrap_fairness,
    bootstrap_seeds,
    metric_functions,
)

AUC = METRIC_NAMES.index("auc")
# These tests check the replicates against fairlearn on small cohorts; the warning about groups below
# `min_support` is tested in test_bootstrap_small_groups.py.
pytestmark = pytest.mark.filterwarnings("ignore::monai_multifair.metrics.SmallGroupWarning")


def test_intervals_statistically_consistent_with_fairlearn_under_other_seeds(cohort_factory):
    """Different random streams, same distribution: interval bounds agree within Monte-Carlo error."""
    y, p, frame = cohort_factory(300, seed=11)
    sex = frame["sex"]
    theirs = MetricFrame(
        metrics={"auc": roc_auc_score},
        y_true=y,
        y_pred=p,
        sensitive_features=sex,
        n_boot=200,
        ci_quantiles=[0.025, 0.975],
        random_state=0,
    )
    ours = bootstrap_fairness(y, p, sensitive_features=sex, n_boot=2000, random_state=123)
    for q, (mine, reference) in enumerate(zip(ours.by_group_ci(), theirs.by_group_ci, strict=True)):
        np.testing.assert_allclose(
            mine["auc"].to_numpy(), reference["auc"].to_numpy(), atol=0.02, err_msg=f"q{q}"
        )
    for mine, reference in zip(ours.overall_ci(), theirs.overall_ci, strict=True):
        assert mine["auc"] == pytest.approx(reference["auc"], abs=0.02)
    # and the intervals are not degenerate
    lower, upper = ours.by_group_ci()
    assert ((upper["auc"] - lower["auc"]) > 0.05).all()


def test_random_state_objects_follow_fairlearn(cohort_factory):
    y, p, frame = cohort_factory(120, seed=12)
    theirs = MetricFrame(
        metrics={"auc": metric_functions()["auc"]},
        y_true=y,
        y_pred=p,
        sensitive_features=frame["race"],
        n_boot=15,
        ci_quantiles=[0.1, 0.9],
        random_state=np.random.RandomState(5),
    )
    ours = bootstrap_fairness(
        y,
        p,
        sensitive_features=frame["race"],
        n_boot=15,
        ci_quantiles=[0.1, 0.9],
        random_state=np.random.RandomState(5),
    )
    for mine, reference in zip(ours.by_group_ci(), theirs.by_group_ci, strict=True):
        np.testing.assert_allclose(mine["auc"].to_numpy(), reference["auc"].to_numpy(), rtol=0, atol=1e-12)


def test_one_sample_per_patient_equals_row_resampling(cohort_factory):
    y, p, frame = cohort_factory(200, seed=13)
    rows = bootstrap_fairness(y, p, sensitive_features=frame, n_boot=40, random_state=3)
    patients = bootstrap_fairness(
        y, p, sensitive_features=frame, n_boot=40, random_state=3, patient_ids=np.arange(200)
    )
    assert patients.resampling == "patients" and rows.resampling == "rows"
    np.testing.assert_array_equal(patients.by_group_samples, rows.by_group_samples)


def test_patient_resampling_matches_a_direct_loop():
    rng = np.random.default_rng(14)
    n_patients = 60
    eyes = rng.integers(1, 3, n_patients)  # one or two samples per patient
    patient = np.repeat(np.arange(n_patients), eyes)
    patient_ids = np.array([f"P{i:03d}" for i in patient])  # sorted order == patient order
    group = np.repeat(rng.integers(0, 2, n_patients), eyes)
    p = rng.random(patient.size)
    y = (rng.random(patient.size) < p).astype(int)
    n_boot = 30
    ours = bootstrap_fairness(
        y, p, sensitive_features=group, n_boot=n_boot, random_state=9, patient_ids=patient_ids
    )
    expected = np.full((n_boot, 2), np.nan)
    counts = np.zeros((n_boot, 2))
    for b, seed in enumerate(bootstrap_seeds(n_boot, 9)):
        drawn = np.random.RandomState(seed).randint(0, n_patients, n_patients)
        rows = np.concatenate([np.flatnonzero(patient == d) for d in drawn])
        for g in range(2):
            sel = rows[group[rows] == g]
            counts[b, g] = sel.size
            if 0 < y[sel].sum() < sel.size:
                expected[b, g] = roc_auc_score(y[sel], p[sel])
    np.testing.assert_allclose(ours.by_group_samples[:, :, AUC], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.by_group_samples[:, :, METRIC_NAMES.index("count")], counts)


def test_chunking_does_not_change_the_replicates(cohort_factory):
    y, p, frame = cohort_factory(150, seed=15)
    whole = bootstrap_fairness(y, p, sensitive_features=frame, n_boot=20, random_state=1)
    chunked = bootstrap_fairness(y, p, sensitive_features=frame, n_boot=20, random_state=1, chunk_size=3)
    # same replicates; only the matrix-product blocking (last-bit rounding) differs
    np.testing.assert_allclose(whole.by_group_samples, chunked.by_group_samples, rtol=0, atol=1e-12)
    np.testing.assert_allclose(whole.summary_samples, chunked.summary_samples, rtol=0, atol=1e-12)


def test_summary_replicates_follow_their_definitions(cohort_factory):
    y, p, frame = cohort_factory(400, seed=16)
    res = bootstrap_fairness(y, p, sensitive_features=frame["race"], n_boot=50, random_state=2, alpha=0.7)
    auc_g = res.by_group_samples[:, :, AUC]
    auc = res.overall_samples[:, AUC]
    summary = pd.DataFrame(res.summary_samples, columns=list(SUMMARY_NAMES))
    np.testing.assert_allclose(
        summary["es_auc"], auc / (1 + 0.7 * np.abs(auc[:, None] - auc_g).sum(1)), atol=1e-12
    )
    np.testing.assert_allclose(summary["worst_group_auc"], auc_g.min(1), atol=1e-12)
    np.testing.assert_allclose(summary["auc_gap"], auc_g.max(1) - auc_g.min(1), atol=1e-12)
    sel = res.by_group_samples[:, :, METRIC_NAMES.index("selection_rate")]
    np.testing.assert_allclose(summary["dpd"], sel.max(1) - sel.min(1), atol=1e-12)
    tpr = res.by_group_samples[:, :, METRIC_NAMES.index("tpr")]
    fpr = res.by_group_samples[:, :, METRIC_NAMES.index("fpr")]
    np.testing.assert_allclose(
        summary["deodds"], np.maximum(tpr.max(1) - tpr.min(1), fpr.max(1) - fpr.min(1)), atol=1e-12
    )
    table = res.summary_ci()
    assert list(table.index) == list(SUMMARY_NAMES)
    np.testing.assert_allclose(table[0.025], np.quantile(res.summary_samples, 0.025, axis=0), atol=1e-12)
    gaps = res.gap_ci()
    assert gaps.loc["auc", 0.975] == pytest.approx(table.loc["auc_gap", 0.975], abs=1e-12)
    assert gaps.loc["selection_rate", "estimate"] == pytest.approx(table.loc["dpd", "estimate"], abs=1e-12)


def test_tiny_group_replicates_are_undefined_not_imputed(cohort_factory):
    y, p, frame = cohort_factory(200, seed=17)
    race = frame["race"].to_numpy().copy()
    race[:3] = "D"
    y[:3] = [0, 1, 1]
    res = bootstrap_fairness(y, p, sensitive_features=race, n_boot=60, random_state=4, min_group_size=3)
    d = list(res.group_index).index("D")
    counts = res.by_group_samples[:, d, METRIC_NAMES.index("count")]
    auc = res.by_group_samples[:, d, AUC]
    assert np.isnan(auc[np.nan_to_num(counts) < 3]).all()
    frac = res.undefined_fraction()
    assert frac.loc["sensitive_feature_0=D", "auc"] == pytest.approx(np.isnan(auc).mean())
    assert frac.loc["sensitive_feature_0=A", "auc"] == 0.0


def test_compare_method_is_checked(cohort_factory):
    y, p, frame = cohort_factory(60, seed=18)
    res = bootstrap_fairness(y, p, sensitive_features=frame["sex"], n_boot=5, random_state=0)
    with pytest.raises(MultiFairError, match="`method` in"):
        res.difference_ci("worst")
    with pytest.raises(MultiFairError, match="`chunk_size` >= 1"):
        bootstrap_fairness(y, p, sensitive_features=frame["sex"], n_boot=5, chunk_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_replicates_equal_cpu(cohort_factory):
    y, p, frame = cohort_factory(2000, seed=19)
    cpu = bootstrap_fairness(
        y, p, sensitive_features=frame, n_boot=200, random_state=0, patient_ids=np.arange(2000) // 2
    )
    gpu = bootstrap_fairness(
        y,
        p,
        sensitive_features=frame,
        n_boot=200,
        random_state=0,
        patient_ids=np.arange(2000) // 2,
        device="cuda",
    )
    np.testing.assert_allclose(gpu.by_group_samples, cpu.by_group_samples, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gpu.summary_samples, cpu.summary_samples, rtol=0, atol=1e-9)
