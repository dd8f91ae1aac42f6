"""MONAI/Ignite handlers: MultiFair in ``SupervisedTrainer``, fairness metrics in ``SupervisedEvaluator``."""

from monai_multifair.handlers.fairness_evaluation_handler import FairnessEvaluationHandler, FairnessKeyMetric
from monai_multifair.handlers.multifair_handler import MultiFairHandler, unwrap_network
from monai_multifair.handlers.prepare_batch import MultimodalPrepareBatch

__all__ = [
    "FairnessEvaluationHandler",
    "FairnessKeyMetric",
    "MultiFairHandler",
    "MultimodalPrepareBatch",
    "unwrap_network",
]
