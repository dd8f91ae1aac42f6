"""Random cohorts for the fairness-metric tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_cohort(
    n: int = 300, seed: int = 0, ties: bool = False
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Binary labels, probabilities correlated with them, and two sensitive attributes (6 intersections)."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    if ties:
        p = np.round(p, 1)  # many tied scores
    y = (rng.random(n) < p).astype(np.int64)
    frame = pd.DataFrame({"race": rng.choice(["A", "B", "C"], n), "sex": rng.choice(["F", "M"], n)})
    return y, p, frame


@pytest.fixture
def cohort() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    return make_cohort()


@pytest.fixture
def cohort_factory():
    return make_cohort
