"""Thresholds fitted on validation data == a brute-force search; degenerate predictions are named."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import (
    degenerate_predictions,
    demographic_parity_difference,
    fairness_summary,
    fit_threshold,
)


def test_youden_maximises_tpr_minus_fpr_over_every_candidate(cohort_factory):
    for seed, ties in ((0, False), (1, True)):
        y, p, _ = cohort_factory(n=200, seed=seed, ties=ties)
        t = fit_threshold(y, p, "youden")

        def youden(c, y=y, p=p):
            tn, fp, fn, tp = confusion_matrix(y, p >= c, labels=[0, 1]).ravel()
            return tp / (tp + fn) - fp / (fp + tn)

        best = max(youden(c) for c in np.unique(p))
        assert youden(t) == pytest.approx(best)
        assert t in set(p)


def test_prevalence_selects_as_many_as_there_are_positives(cohort_factory):
    y, p, _ = cohort_factory(n=200, seed=4)  # distinct scores: exactly as many selected as positives
    t = fit_threshold(y, p, "prevalence")
    assert int((p >= t).sum()) == int(y.sum())
    assert fit_threshold([0, 0, 0, 1], [0.1, 0.3, 0.35, 0.8], "prevalence") == 0.8


def test_fit_threshold_errors():
    with pytest.raises(MultiFairError, match="unknown threshold rule 'yuden'.*did you mean 'youden'"):
        fit_threshold([0, 1], [0.2, 0.8], "yuden")
    with pytest.raises(MultiFairError, match="no positive samples"):
        fit_threshold([0, 0], [0.2, 0.8], "youden")
    with pytest.raises(MultiFairError, match="no negative samples"):
        fit_threshold([1, 1], [0.2, 0.8], "prevalence")


def test_a_model_with_no_positive_predictions_is_flagged():
    """The reproduction of the report: highest score 0.31, so DPD is a clean 0 at threshold 0.5."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = 0.31 * rng.random(200)
    groups = rng.choice(["F", "M"], 200)
    assert demographic_parity_difference(y, p, sensitive_features=groups) == 0.0  # looks fair ...
    found = degenerate_predictions(y, p, sensitive_features={"sex": groups})
    assert set(found) == {"overall", "sex=F", "sex=M"}  # ... and is flagged
    assert found["overall"] == (
        f"no positive predictions: highest score {p.max():.3f} < threshold 0.5 (200 samples)"
    )
    summary = fairness_summary(y, p, (groups == "M").astype(int), ["F", "M"])
    assert set(summary["degenerate"]) == {"overall", "F", "M"}


def test_one_degenerate_group_and_all_positive_decisions():
    y = [0, 1, 0, 1, 0, 1]
    p = [0.6, 0.9, 0.7, 0.8, 0.1, 0.9]
    a = ["a", "a", "a", "a", "b", "b"]
    found = degenerate_predictions(y, p, sensitive_features={"g": a})
    assert found == {"g=a": "no negative predictions: lowest score 0.600 >= threshold 0.5 (4 samples)"}
    assert degenerate_predictions(y, p, sensitive_features={"g": a}, threshold=0.05) == {
        "overall": "no negative predictions: lowest score 0.100 >= threshold 0.05 (6 samples)",
        "g=a": "no negative predictions: lowest score 0.600 >= threshold 0.05 (4 samples)",
        "g=b": "no negative predictions: lowest score 0.100 >= threshold 0.05 (2 samples)",
    }
    # groups below min_group_size are not examined; zero-weight samples are left out
    assert degenerate_predictions(y, p, sensitive_features={"g": a}, min_group_size=5) == {}
    weights = [1, 1, 1, 1, 0, 1]
    assert "g=b" in degenerate_predictions(y, p, sensitive_features={"g": a}, sample_weight=weights)
    assert fairness_summary(y, p, [0, 0, 0, 0, 1, 1], ["a", "b"], threshold=0.5)["degenerate"] == {
        "a": "no negative predictions: lowest score 0.600 >= threshold 0.5 (4 samples)"
    }
