"""The selection rule and the search-space probe."""

from __future__ import annotations

import math

import pytest

from monai_multifair.comparison import select_trial
from monai_multifair.comparison.tuning import is_empty_space
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import get_method_spec


def _trial(number: int, auc: float, es_auc: float) -> dict:
    return {"number": number, "options": {"n": number}, "validation": {"auc": auc, "es_auc": es_auc}}


def test_the_auc_guard_excludes_a_fair_but_worse_model() -> None:
    trials = [_trial(0, 0.90, 0.80), _trial(1, 0.85, 0.84), _trial(2, 0.895, 0.82)]
    chosen = select_trial(trials, "es_auc", auc_guard=0.01)
    assert chosen["number"] == 2  # trial 1 has the best ES-AUC but is 5 points of AUC below the best
    assert select_trial(trials, "es_auc", auc_guard=0.1)["number"] == 1
    assert chosen["best_validation_auc"] == 0.90


def test_ties_keep_the_earlier_trial_and_undefined_metrics_fall_back_to_auc() -> None:
    assert select_trial([_trial(3, 0.9, 0.8), _trial(1, 0.9, 0.8)], "es_auc", 0.01)["number"] == 1
    chosen = select_trial([_trial(0, 0.88, math.nan), _trial(1, 0.9, math.nan)], "es_auc", 0.01)
    assert chosen["number"] == 1 and "undefined" in chosen["rule"]
    with pytest.raises(MultiFairError, match="validation AUC"):
        select_trial([_trial(0, math.nan, math.nan)], "es_auc", 0.01)


def test_search_space_probe() -> None:
    assert is_empty_space(get_method_spec("erm").search_space)
    assert not is_empty_space(get_method_spec("groupdro").search_space)
