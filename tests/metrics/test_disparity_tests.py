"""Permutation tests of each attribute's disparities == a hand loop with sklearn; Holm == a hand computation."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import TESTED_METRICS, disparity_tests, fairness_metric_frame, holm_adjust
from monai_multifair.metrics._inputs import calibration_bin_ids


def hand_holm(p):
    """Holm's step-down procedure written out (statsmodels' multipletests(method="holm") formula)."""
    p = list(p)
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_holm_equals_the_hand_computation():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 13):
        p = rng.random(m) ** 3
        np.testing.assert_allclose(holm_adjust(p), hand_holm(p))
    # ties and NaN: NaN stays NaN and does not count in m
    np.testing.assert_allclose(holm_adjust([0.01, np.nan, 0.01, 0.5]), [0.03, np.nan, 0.03, 0.5])
    assert np.isnan(holm_adjust([np.nan])).all()


def hand_metrics(y, p, ids, k, threshold, bins):
    """Per-group AUC (sklearn), selection rate, TPR, FPR and ECE by loops; NaN where undefined."""
    out = {m: np.full(k, np.nan) for m in TESTED_METRICS}
    b = calibration_bin_ids(p, bins)
    for g in range(k):
        m = ids == g
        if not m.any():
            continue
        yg, pg, d = y[m], p[m], p[m] >= threshold
        out["selection_rate"][g] = d.mean()
        if yg.any():
            out["tpr"][g] = d[yg == 1].mean()
        if (yg == 0).any():
            out["fpr"][g] = d[yg == 0].mean()
        if yg.any() and (yg == 0).any():
            out["auc"][g] = roc_auc_score(yg, pg)
        out["calibration_error"][g] = sum(abs((yg - pg)[b[m] == j].sum()) for j in range(bins)) / m.sum()
    return out


def hand_tests(y, p, frame, threshold, n_permutations, seed, bins=10):
    attributes = [(c, pd.factorize(frame[c], sort=True)[0]) for c in frame.columns]
    joint = pd.factorize(pd.MultiIndex.from_frame(frame.astype(str)), sort=True)[0]
    attributes.append((" & ".join(frame.columns), joint))
    rows = []
    for name, ids in attributes:
        k = int(ids.max()) + 1
        gap = {m: np.nanmax(v) - np.nanmin(v) for m, v in hand_metrics(y, p, ids, k, threshold, bins).items()}
        rng = np.random.default_rng(seed)
        exceed = dict.fromkeys(TESTED_METRICS, 0)
        for _ in range(n_permutations):
            perm = hand_metrics(y, p, ids[rng.permutation(len(y))], k, threshold, bins)
            for m, v in perm.items():
                exceed[m] += (np.nanmax(v) - np.nanmin(v)) >= gap[m] - 1e-12
        rows += [(name, m, gap[m], (1 + exceed[m]) / (1 + n_permutations)) for m in TESTED_METRICS]
    return rows


def test_p_values_equal_a_hand_loop_with_sklearn(cohort_factory):
    y, p, frame = cohort_factory(n=120, seed=3, ties=True)  # tied scores: the AUC's half counts matter
    p = np.clip(p + 0.15 * (frame["sex"] == "M"), 0, 1)  # a real selection-rate disparity by sex
    table = disparity_tests(y, p, sensitive_features=frame, threshold=0.5, n_permutations=40, random_state=7)
    expected = hand_tests(y, p, frame, 0.5, 40, 7)
    assert [(r.attribute, r.metric) for r in table.itertuples()] == [(a, m) for a, m, _, _ in expected]
    np.testing.assert_allclose(table["gap"], [e[2] for e in expected], atol=1e-12)
    np.testing.assert_allclose(table["p_value"], [e[3] for e in expected])
    np.testing.assert_allclose(table["p_holm"], hand_holm([e[3] for e in expected]))
    # the observed gaps of the intersection are the audit's gaps (fairness_metric_frame)
    by_group = fairness_metric_frame(y, p, sensitive_features=frame, n_boot=None).by_group
    joint = table[table["attribute"] == "race & sex"].set_index("metric")["gap"]
    for m in TESTED_METRICS:
        assert joint[m] == pytest.approx(by_group[m].max() - by_group[m].min())


def test_a_strong_disparity_is_significant_and_none_is_not():
    rng = np.random.default_rng(0)
    n = 600
    sex = rng.choice(["F", "M"], n)
    colour = rng.choice(["red", "blue"], n)  # unrelated to anything
    y = rng.integers(0, 2, n)
    p = np.clip(0.4 * y + 0.3 * (sex == "M") + 0.3 * rng.random(n), 0, 1)
    table = disparity_tests(
        y, p, sensitive_features={"sex": sex, "colour": colour}, n_permutations=999, random_state=1
    ).set_index(["attribute", "metric"])
    assert table.loc[("sex", "selection_rate"), "p_value"] == pytest.approx(1 / 1000)  # never exceeded
    assert table.loc[("sex", "selection_rate"), "p_holm"] < 0.05
    assert (table.xs("colour", level="attribute")["p_holm"] > 0.05).all()


def test_undefined_gap_has_no_p_value_and_is_left_out_of_holm():
    y = np.array([1, 1, 1, 0, 1, 0, 1, 0])  # group a has no negatives: its FPR and AUC are undefined
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.4, 0.6, 0.1])
    a = np.array(["a", "a", "a", "b", "b", "b", "b", "b"])
    table = disparity_tests(y, p, sensitive_features={"g": a}, n_permutations=20).set_index("metric")
    assert np.isnan(table.loc["fpr", "gap"]) and np.isnan(table.loc["fpr", "p_value"])
    assert np.isnan(table.loc["auc", "p_holm"])
    defined = table["p_value"].dropna()
    np.testing.assert_allclose(table.loc[defined.index, "p_holm"], hand_holm(defined.to_numpy()))


def test_sample_weights_equal_repeated_rows(cohort_factory):
    y, p, frame = cohort_factory(n=60, seed=2)
    w = np.tile([1, 2, 3], 20)
    weighted = disparity_tests(y, p, sensitive_features=frame[["sex"]], sample_weight=w, n_permutations=1)
    repeated = disparity_tests(
        np.repeat(y, w), np.repeat(p, w), sensitive_features=frame[["sex"]].loc[np.repeat(np.arange(60), w)],
        n_permutations=1,
    )  # fmt: skip
    np.testing.assert_allclose(weighted["gap"], repeated["gap"], atol=1e-12)


def test_bad_inputs_name_the_argument():
    y, p, a = [0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], ["a", "a", "b", "b"]
    for kwargs, match in (
        ({"n_permutations": 0}, "n_permutations"),
        ({"metrics": ["auc", "dpd"]}, r"unknown metric\(s\) \['dpd'\] in `metrics`"),
        ({"metrics": []}, "`metrics`"),
        ({"threshold": 2}, "threshold"),
    ):
        with pytest.raises(MultiFairError, match=match):
            disparity_tests(y, p, sensitive_features=a, **kwargs)


def test_multiclass_scores_test_the_rates_not_the_auc():
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(3), 90)
    labels = rng.integers(0, 3, 90)
    table = disparity_tests(labels, scores, sensitive_features=rng.choice(["a", "b"], 90), n_permutations=5)
    assert "auc" not in set(table["metric"])
    assert list(itertools.islice(table["metric"], 4)) == ["selection_rate", "tpr", "fpr", "calibration_error"]
