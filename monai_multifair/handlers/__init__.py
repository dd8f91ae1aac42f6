"""MONAI/Ignite handlers: MultiFair and loss-weighting methods in ``SupervisedTrainer``, fairness metrics in
``SupervisedEvaluator``."""

from monai_multifair.handlers.fairness_evaluation_handler import FairnessEvaluationHandler, FairnessKeyMetric
from monai_multifair.handlers.multifair_handler import MultiFairHandler, unwrap_network
from monai_multifair.handlers.prepare_batch import MultimodalPrepareBatch
from monai_multifair.handlers.sample_weighting_handler import SampleWeightingHandler

__all__ = [
    "FairnessEvaluationHandler",
    "FairnessKeyMetric",
    "MultiFairHandler",
    "MultimodalPrepareBatch",
    "SampleWeightingHandler",
    "unwrap_network",
]
