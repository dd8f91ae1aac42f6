"""``threshold-optimizer``: fairlearn's ``ThresholdOptimizer`` as a post-processing step (Hardt, Price and
Srebro, "Equality of Opportunity in Supervised Learning", NeurIPS 2016; fairlearn
``fairlearn.postprocessing.ThresholdOptimizer``).

Fitted on the validation split's positive-class scores, labels and group labels, applied to the test
split's scores: group-specific (randomised) thresholds that satisfy the chosen constraint (equalized
odds, demographic parity, ...) while optimising the objective. It changes decisions, not scores: the
AUC, ES-AUC and group AUCs stay those of the trained model; threshold metrics (DPD, DEOdds, accuracy,
TPR/FPR per group) change. It composes with any training method (config key ``postprocessing``) and is
reported as its own row. Binary tasks only; the randomisation is seeded (``random_state``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from monai_multifair.config.validation import check
from monai_multifair.errors import MultiFairError
from monai_multifair.methods.base import PostProcessor
from monai_multifair.plugins.hookspecs import hookimpl
from monai_multifair.plugins.method_spec import MethodSpec

__all__ = [
    "THRESHOLD_OPTIMIZER_SPEC",
    "ScorePassthrough",
    "ThresholdOptimization",
    "ThresholdOptimizerOptions",
]


@dataclass
class ThresholdOptimizerOptions:
    """Options of ``threshold-optimizer`` (fairlearn's names).

    Attributes:
        constraints: ``"equalized_odds"``, ``"demographic_parity"``, ``"true_positive_rate_parity"``,
            ``"false_positive_rate_parity"``, ...
        objective: ``"balanced_accuracy_score"`` or ``"accuracy_score"``.
        grid_size: number of thresholds tried, >= 2.
        random_state: seed of the randomised decisions.
    """

    constraints: Literal[
        "equalized_odds",
        "demographic_parity",
        "true_positive_rate_parity",
        "false_positive_rate_parity",
        "true_negative_rate_parity",
        "false_negative_rate_parity",
    ] = "equalized_odds"
    objective: Literal["balanced_accuracy_score", "accuracy_score"] = "balanced_accuracy_score"
    grid_size: int = field(default=1000, metadata=check(lambda v: v >= 2, "an integer >= 2"))
    random_state: int = field(default=0, metadata=check(lambda v: v >= 0, "an integer >= 0"))


class ScorePassthrough(ClassifierMixin, BaseEstimator):
    """A fitted "estimator" whose prediction is its single input column: the trained model's score."""

    def fit(self, X: Any, y: Any = None) -> ScorePassthrough:
        self.n_features_in_ = 1
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float)[:, 0]


class ThresholdOptimization(PostProcessor):
    """fairlearn's ``ThresholdOptimizer`` on the trained model's scores (``prefit=True``)."""

    name = "threshold-optimizer"

    def __init__(self, options: ThresholdOptimizerOptions | None = None) -> None:
        super().__init__(options or ThresholdOptimizerOptions())
        self.optimizer: Any = None

    @staticmethod
    def _check(scores: Any, sensitive_features: Any, labels: Any = None) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(scores, dtype=float)
        if scores.ndim != 1:
            raise MultiFairError(
                f"expected `scores` to be [N] positive-class scores (threshold-optimizer is for binary tasks), "
                f"got shape {scores.shape}"
            )
        if not np.isfinite(scores).all():
            raise MultiFairError("expected `scores` to be finite, got NaN or inf")
        features = np.asarray(sensitive_features)
        if features.shape[0] != scores.shape[0]:
            raise MultiFairError(
                f"expected `sensitive_features` to have one value per score ({scores.shape[0]}), got {features.shape[0]}"
            )
        if labels is not None:
            values = set(np.unique(np.asarray(labels)).tolist())
            if not values <= {0, 1}:
                raise MultiFairError(
                    f"expected binary `labels` (0/1) for threshold-optimizer, got values {sorted(values)}"
                )
        return scores.reshape(-1, 1), features

    def fit(self, scores: Any, labels: Any, sensitive_features: Any) -> ThresholdOptimization:
        from fairlearn.postprocessing import ThresholdOptimizer

        X, features = self._check(scores, sensitive_features, labels)
        o = self.options
        self.optimizer = ThresholdOptimizer(
            estimator=ScorePassthrough().fit(X),
            constraints=o.constraints,
            objective=o.objective,
            grid_size=o.grid_size,
            prefit=True,
            predict_method="predict",
        )
        self.optimizer.fit(X, np.asarray(labels).astype(int), sensitive_features=features)
        return self

    def predict(self, scores: Any, sensitive_features: Any) -> np.ndarray:
        if self.optimizer is None:
            raise MultiFairError(
                "threshold-optimizer is not fitted: call `fit` on the validation split first"
            )
        X, features = self._check(scores, sensitive_features)
        decisions = self.optimizer.predict(
            X, sensitive_features=features, random_state=self.options.random_state
        )
        return np.asarray(decisions).astype(int)

    def describe(self) -> str:
        return f"ThresholdOptimizer ({self.options.constraints.replace('_', ' ')})"


def _search_space(trial: Any) -> dict[str, Any]:
    return {
        "objective": trial.suggest_categorical("objective", ["balanced_accuracy_score", "accuracy_score"])
    }


THRESHOLD_OPTIMIZER_SPEC = MethodSpec(
    name="threshold-optimizer",
    factory=ThresholdOptimization,
    options=ThresholdOptimizerOptions,
    description="fairlearn's ThresholdOptimizer fitted on validation scores (Hardt et al., NeurIPS 2016)",
    kind="postprocessing",
    search_space=_search_space,
)


@hookimpl
def multifair_methods() -> list[MethodSpec]:
    """This module's method, registered as a built-in plugin (``monai_multifair.plugins.builtin``)."""
    return [THRESHOLD_OPTIMIZER_SPEC]
