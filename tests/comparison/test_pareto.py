"""Selection criteria: MEDFAIR's distance to optimal and the AUC / ES-AUC Pareto front, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monai_multifair.comparison import CompareConfig, select_trial
from monai_multifair.comparison.pareto import distance_to_optimal, pareto_front
from monai_multifair.errors import MultiFairError


def test_distance_to_optimal_by_hand() -> None:
    candidates = [
        {"a": 0.90, "b": 0.60, "c": 0.70},
        {"a": 0.80, "b": 0.75, "c": 0.72},
        {"a": 0.85, "b": 0.70, "c": 0.80},
    ]
    # utopia: a 0.90, b 0.75, c 0.80 (the best of each group among the candidates)
    expected = [
        math.sqrt((1 - 0.90 / 0.90) ** 2 + (1 - 0.60 / 0.75) ** 2 + (1 - 0.70 / 0.80) ** 2),
        math.sqrt((1 - 0.80 / 0.90) ** 2 + (1 - 0.75 / 0.75) ** 2 + (1 - 0.72 / 0.80) ** 2),
        math.sqrt((1 - 0.85 / 0.90) ** 2 + (1 - 0.70 / 0.75) ** 2 + (1 - 0.80 / 0.80) ** 2),
    ]
    assert distance_to_optimal(candidates) == pytest.approx(expected)
    assert int(np.argmin(expected)) == 2


def test_distance_to_optimal_leaves_undefined_candidates_undefined() -> None:
    out = distance_to_optimal([{"a": 0.8, "b": math.nan}, {"a": 0.6, "b": 0.7}, {"a": 0.7}])
    assert math.isnan(out[0]) and math.isnan(out[2])  # an undefined group, a missing group
    # utopia a = 0.8, b = 0.7 (the first candidate's undefined b is left out of it)
    assert out[1] == pytest.approx(1 - 0.6 / 0.8)
    with pytest.raises(MultiFairError, match="at least one candidate"):
        distance_to_optimal([])


def test_pareto_front_by_hand() -> None:
    points = [
        (0.80, 0.70),
        (0.85, 0.60),
        (0.70, 0.65),
        (0.80, 0.75),
        (0.60, 0.80),
        (math.nan, 0.9),
        (0.85, 0.60),
    ]
    # (0.80, 0.70) is beaten by (0.80, 0.75); (0.70, 0.65) by (0.80, 0.70); NaN never on the front;
    # the two copies of (0.85, 0.60) are both on it
    assert pareto_front(points) == [4, 3, 1, 6]


def test_pareto_front_against_brute_force_on_random_points() -> None:
    rng = np.random.default_rng(0)
    points = [tuple(p) for p in rng.uniform(0.5, 1.0, (60, 2)).round(2)]
    front = set(pareto_front(points))
    for i, p in enumerate(points):
        dominated = any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)
        assert (i in front) == (not dominated)


def _trial(number: int, auc: float, es_auc: float, groups: dict) -> dict:
    return {
        "number": number,
        "options": {"k": number},
        "validation": {"auc": auc, "es_auc": es_auc, "group_auc": groups},
    }


def test_select_trial_by_distance_to_optimal_differs_from_es_auc() -> None:
    trials = [
        _trial(0, 0.80, 0.74, {"a": 0.84, "b": 0.70}),  # best ES-AUC
        _trial(1, 0.80, 0.72, {"a": 0.90, "b": 0.69}),
        _trial(2, 0.79, 0.70, {"a": 0.80, "b": 0.75}),
        _trial(3, 0.60, 0.60, {"a": 0.95, "b": 0.80}),  # outside the 0.01 AUC guard: not a candidate
    ]
    assert select_trial(trials, "es_auc", 0.01)["number"] == 0
    chosen = select_trial(trials, "distance_to_optimal", 0.01)
    # utopia among trials 0-2: a 0.90, b 0.75; by hand the distances are
    # t0: sqrt((1-.84/.9)^2 + (1-.70/.75)^2) = 0.0943; t1: sqrt(0 + (1-.69/.75)^2) = 0.08;
    # t2: sqrt((1-.80/.90)^2 + 0) = 0.1111
    assert chosen["number"] == 1
    assert chosen["validation"]["distance_to_optimal"] == pytest.approx(0.08)
    assert chosen["rule"].startswith("smallest validation distance_to_optimal among 3 trial(s)")


def test_distance_to_optimal_is_a_selection_metric_of_compare() -> None:
    config = CompareConfig.from_dict(
        {"methods": ["erm"], "datasets": ["cohort"], "selection": {"metric": "distance_to_optimal"}}
    )
    assert config.selection.metric == "distance_to_optimal"
    with pytest.raises(MultiFairError, match="distance_to_optimal"):
        CompareConfig.from_dict({"methods": ["erm"], "datasets": ["cohort"], "selection": {"metric": "dto"}})
