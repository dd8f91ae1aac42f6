"""``fairness_metric_frame`` against fairlearn's ``MetricFrame`` with plain sklearn/fairlearn metrics."""

from __future__ import annotations

import fairlearn.metrics as flm
import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from fairlearn.metrics import MetricFrame
from sklearn.calibration import calibration_curve

from monai_multifair.metrics import (
    METRIC_NAMES,
    FairnessMetricFrame,
    UndefinedGroupMetricWarning,
    fairness_metric_frame,
    metric_functions,
)
from monai_multifair.metrics._inputs import prepare_groups, prepare_predictions
from monai_multifair.metrics.fairness import point_estimate

ATOL = 1e-9


def _plain_metrics(threshold: float) -> dict:
    """The field's metrics written directly with sklearn/fairlearn, no undefined handling."""

    def thresholded(fn):
        return lambda y, p, **kw: fn(y, (np.asarray(p) >= threshold).astype(int), **kw)

    def ece(y, p, sample_weight=None):
        y, p = np.asarray(y), np.asarray(p)
        prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
        edges = np.linspace(0, 1, 11)
        counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=10)
        counts = counts[counts > 0]
        return float(np.sum(counts / len(y) * np.abs(prob_true - prob_pred)))

    return {
        "auc": skm.roc_auc_score,
        "accuracy": thresholded(skm.accuracy_score),
        "tpr": thresholded(flm.true_positive_rate),
        "fpr": thresholded(flm.false_positive_rate),
        "selection_rate": thresholded(flm.selection_rate),
        "count": flm.count,
        "prevalence": lambda y, p: float(np.mean(y)),
        "calibration_error": ece,
    }


def _assert_frames_close(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(ours.index) == list(reference.index)
    assert list(ours.columns) == list(reference.columns)
    np.testing.assert_allclose(ours.to_numpy(float), reference.to_numpy(float), rtol=0, atol=ATOL)


def test_point_estimates_equal_plain_fairlearn_metric_frame(cohort_factory):
    y, p, frame = cohort_factory(600, seed=0, ties=True)
    for threshold in (0.5, 0.35):
        mf = fairness_metric_frame(y, p, sensitive_features=frame, threshold=threshold)
        assert isinstance(mf, MetricFrame) and isinstance(mf, FairnessMetricFrame)
        reference = MetricFrame(
            metrics=_plain_metrics(threshold), y_true=y, y_pred=p, sensitive_features=frame
        )
        _assert_frames_close(mf.by_group, reference.by_group)
        np.testing.assert_allclose(mf.overall.to_numpy(float), reference.overall.to_numpy(float), atol=ATOL)
        assert mf.difference()["auc"] == pytest.approx(reference.difference()["auc"], abs=ATOL)


def test_engine_point_estimates_equal_the_metric_frame(cohort_factory):
    y, p, frame = cohort_factory(400, seed=1)
    frame.loc[frame["race"] == "C", "sex"] = "F"  # empty intersection (C, M)
    w = np.random.default_rng(1).random(400) * 2
    with pytest.warns(UndefinedGroupMetricWarning, match=r"'race=C & sex=M' \(.*: no samples\)"):
        mf = fairness_metric_frame(y, p, sensitive_features=frame, sample_weight=w, threshold=0.45)
    point = point_estimate(
        prepare_predictions(y, p), prepare_groups(frame, 400), threshold=0.45, sample_weight=w
    )
    engine = pd.DataFrame(point.by_group, index=mf.by_group.index)[list(METRIC_NAMES)]
    _assert_frames_close(engine, mf.by_group)
    assert mf.by_group.loc[("C", "M")].isna().all()
    np.testing.assert_allclose(
        [point.overall[m] for m in METRIC_NAMES], mf.overall.to_numpy(float), atol=ATOL
    )


def test_multiclass_frame_uses_one_vs_rest():
    rng = np.random.default_rng(2)
    n = 500
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    groups = pd.Series(rng.choice(["u", "v"], n), name="site")
    mf = fairness_metric_frame(labels, probs, sensitive_features=groups, pos_label=2, threshold=0.4)
    for key in ("u", "v"):
        m = (groups == key).to_numpy()
        row = mf.by_group.loc[key]
        assert row["auc"] == pytest.approx(
            skm.roc_auc_score(labels[m], probs[m], multi_class="ovr"), abs=ATOL
        )
        assert row["accuracy"] == pytest.approx(skm.accuracy_score(labels[m], probs[m].argmax(1)), abs=ATOL)
        target, yhat = (labels[m] == 2).astype(int), (probs[m, 2] >= 0.4).astype(int)
        assert row["tpr"] == pytest.approx(flm.true_positive_rate(target, yhat), abs=ATOL)
        assert row["selection_rate"] == pytest.approx(yhat.mean(), abs=ATOL)
        assert row["prevalence"] == pytest.approx(target.mean(), abs=ATOL)
    point = point_estimate(
        prepare_predictions(labels, probs, pos_label=2), prepare_groups(groups, n), threshold=0.4
    )
    np.testing.assert_allclose(
        np.stack([point.by_group[m] for m in METRIC_NAMES], 1), mf.by_group.to_numpy(float), atol=ATOL
    )


def test_one_class_and_tiny_groups_are_nan_with_warning(cohort_factory):
    y, p, frame = cohort_factory(300, seed=3)
    race = frame["race"].to_numpy().copy()
    race[:3] = "D"
    y[:3] = 1
    race[3:5] = "E"
    y[3:5] = [0, 1]
    groups = pd.Series(race, name="race")
    with pytest.warns(UndefinedGroupMetricWarning) as record:
        mf = fairness_metric_frame(y, p, sensitive_features=groups, min_group_size=3)
    message = str(record[0].message)
    assert "'race=D' (auc, fpr: no negative samples)" in message
    assert (
        "'race=E' (auc, accuracy, tpr, fpr, selection_rate, prevalence, calibration_error: 2 sample(s) < min_group_size=3)"
        in message
    )
    assert np.isnan(mf.by_group.loc["D", "auc"]) and np.isnan(mf.by_group.loc["D", "fpr"])
    assert mf.by_group.loc["D", "tpr"] == pytest.approx(np.mean(p[:3] >= 0.5))
    assert mf.by_group.loc["E"].drop("count").isna().all() and mf.by_group.loc["E", "count"] == 2


def test_ece_equals_calibration_curve_on_the_whole_cohort(cohort_factory):
    y, p, frame = cohort_factory(1000, seed=4)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
    expected = np.sum(counts[counts > 0] / len(y) * np.abs(prob_true - prob_pred))
    mf = fairness_metric_frame(y, p, sensitive_features=frame["sex"])
    assert mf.overall["calibration_error"] == pytest.approx(expected, abs=ATOL)


@pytest.mark.filterwarnings("ignore::monai_multifair.metrics.SmallGroupWarning")  # fairlearn parity only
def test_bootstrap_intervals_equal_fairlearns_own_bootstrap(cohort_factory):
    """Same random_state -> the very same replicates: every *_ci accessor agrees with fairlearn's n_boot."""
    y, p, frame = cohort_factory(150, seed=5)
    w = np.random.default_rng(5).random(150)
    quantiles = [0.05, 0.5, 0.95]
    mf = fairness_metric_frame(
        y, p, sensitive_features=frame, n_boot=25, ci_quantiles=quantiles, random_state=7, sample_weight=w
    )
    reference = MetricFrame(
        metrics=metric_functions(),
        y_true=y,
        y_pred=p,
        sensitive_features=frame,
        sample_params={m: {"sample_weight": w} for m in METRIC_NAMES if m != "count"},
        n_boot=25,
        ci_quantiles=quantiles,
        random_state=7,
    )
    assert mf.n_boot == 25 and mf.ci_quantiles == quantiles
    for ours, theirs in zip(mf.by_group_ci, reference.by_group_ci, strict=True):
        _assert_frames_close(ours, theirs)
    pairs = [(mf.overall_ci, reference.overall_ci), (mf.group_min_ci(), reference.group_min_ci())]
    pairs.append((mf.group_max_ci(), reference.group_max_ci()))
    for method in ("between_groups", "to_overall"):
        pairs.append((mf.difference_ci(method), reference.difference_ci(method)))
        pairs.append((mf.ratio_ci(method), reference.ratio_ci(method)))
    for ours_list, theirs_list in pairs:
        for ours, theirs in zip(ours_list, theirs_list, strict=True):
            np.testing.assert_allclose(ours.to_numpy(float), theirs.to_numpy(float), rtol=0, atol=ATOL)


def test_without_bootstrap_the_ci_accessors_raise_like_fairlearn(cohort_factory):
    y, p, frame = cohort_factory(100, seed=6)
    mf = fairness_metric_frame(y, p, sensitive_features=frame["sex"])
    assert mf.bootstrap is None and mf.n_boot is None
    with pytest.raises(ValueError, match="n_boot"):
        _ = mf.by_group_ci
    with pytest.raises(ValueError, match="n_boot"):
        mf.difference_ci()
