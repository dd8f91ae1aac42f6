"""Operating thresholds fitted on validation data and applied unchanged to the test data.

Rules (``evaluation.threshold`` in a run config):

* a number ``t`` in ``(0, 1)``: fixed, nothing is fitted;
* ``"youden"``: the score ``t`` maximising Youden's ``J = TPR(t) - FPR(t)`` on the validation data
  (the first of equal maxima in ``sklearn.metrics.roc_curve``'s order, i.e. the highest such ``t``);
* ``"prevalence"``: the score ``t`` at which the share of validation samples predicted positive
  (``p >= t``) equals the validation prevalence: the ``k``-th highest score, ``k`` the number of
  positive validation samples (more samples are selected when scores tie at ``t``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sklearn.metrics as skm

from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.metrics._inputs import prepare_predictions

__all__ = ["THRESHOLD_RULES", "fit_threshold"]

#: The rules :func:`fit_threshold` knows.
THRESHOLD_RULES: tuple[str, ...] = ("youden", "prevalence")


def fit_threshold(y_true: Any, y_score: Any, rule: str, *, pos_label: Any = 1) -> float:
    """Fit an operating threshold on validation labels and probabilities (see the module rules).

    Args:
        y_true: ``[N]`` labels (binary, or class ids for ``[N, C]`` scores).
        y_score: ``[N]`` positive-class probabilities or ``[N, C]`` class probabilities.
        rule: ``"youden"`` or ``"prevalence"``.
        pos_label: positive label (1-D scores) or positive column (2-D scores).

    Returns:
        The threshold, a probability in ``[0, 1]`` (predicted positive when ``p >= threshold``).

    Raises:
        MultiFairError: an unknown rule, or validation data without both classes.

    Example:
        >>> fit_threshold([0, 0, 1, 1], [0.1, 0.3, 0.35, 0.8], "youden")
        0.35
        >>> fit_threshold([0, 0, 0, 1], [0.1, 0.3, 0.35, 0.8], "prevalence")
        0.8
    """
    if rule not in THRESHOLD_RULES:
        raise MultiFairError(
            f"unknown threshold rule {rule!r}; known: {', '.join(THRESHOLD_RULES)} (or a number in (0, 1))"
            + close_match_hint(str(rule), THRESHOLD_RULES)
        )
    pred = prepare_predictions(y_true, y_score, pos_label=pos_label, require_probabilities=True)
    positives = int(pred.positive.sum())
    if positives == 0 or positives == pred.n:
        missing = "positive" if positives == 0 else "negative"
        raise MultiFairError(
            f"cannot fit threshold rule {rule!r}: the validation data have no {missing} samples "
            f"({pred.n} samples); use a fixed `threshold` instead"
        )
    if rule == "youden":
        fpr, tpr, thresholds = skm.roc_curve(pred.positive, pred.p)
        best = int(np.argmax(tpr - fpr))
        return float(min(thresholds[best], 1.0))
    return float(np.sort(pred.p)[::-1][positives - 1])
