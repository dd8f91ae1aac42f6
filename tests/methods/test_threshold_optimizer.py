"""``threshold-optimizer`` equals fairlearn's ThresholdOptimizer used directly on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.linear_model import LogisticRegression

from monai_multifair.errors import MultiFairError
from monai_multifair.methods import ThresholdOptimization, ThresholdOptimizerOptions


def _data(seed, n=600):
    rng = np.random.default_rng(seed)
    groups = rng.choice(np.array(["A", "B", "C"], dtype=object), size=n, p=[0.5, 0.3, 0.2])
    labels = rng.integers(0, 2, size=n)
    shift = np.select([groups == "A", groups == "B"], [0.0, 0.8], 1.5)
    scores = 1 / (1 + np.exp(-(2.0 * labels - 1.0 + shift + rng.normal(0, 1.2, size=n))))
    return scores, labels, groups


@pytest.mark.parametrize("constraints", ["equalized_odds", "demographic_parity"])
def test_decisions_equal_fairlearn_on_the_same_scores(constraints):
    val_scores, val_labels, val_groups = _data(0)
    test_scores, _, test_groups = _data(1)
    options = ThresholdOptimizerOptions(
        constraints=constraints, objective="balanced_accuracy_score", random_state=5
    )
    ours = ThresholdOptimization(options).fit(val_scores, val_labels, val_groups)
    decisions = ours.predict(test_scores, test_groups)

    # fairlearn directly: a prefit estimator whose decision is the score itself
    estimator = LogisticRegression().fit(np.c_[[-1.0, 1.0]], [0, 1])
    estimator.coef_[:] = 1.0
    estimator.intercept_[:] = 0.0
    reference = ThresholdOptimizer(
        estimator=estimator,
        constraints=constraints,
        objective="balanced_accuracy_score",
        prefit=True,
        predict_method="decision_function",
    )
    reference.fit(val_scores.reshape(-1, 1), val_labels, sensitive_features=val_groups)
    expected = reference.predict(test_scores.reshape(-1, 1), sensitive_features=test_groups, random_state=5)
    np.testing.assert_array_equal(decisions, expected)
    assert set(np.unique(decisions)) <= {0, 1}


def test_bad_inputs():
    with pytest.raises(MultiFairError, match="not fitted"):
        ThresholdOptimization().predict(np.array([0.1]), np.array(["A"]))
    with pytest.raises(MultiFairError, match=r"binary `labels` \(0/1\)"):
        ThresholdOptimization().fit(np.array([0.1, 0.2]), np.array([0, 2]), np.array(["A", "B"]))
    with pytest.raises(MultiFairError, match=r"\[N\] positive-class scores"):
        ThresholdOptimization().fit(np.ones((2, 2)), np.array([0, 1]), np.array(["A", "B"]))
    with pytest.raises(MultiFairError, match="one value per score"):
        ThresholdOptimization().fit(np.array([0.1, 0.2]), np.array([0, 1]), np.array(["A"]))
