"""MONAI/Ignite handlers: MultiFair in ``SupervisedTrainer``, fairness metrics in ``SupervisedEvaluator``."""

from monai_multifair.handlers.multifair_handler import MultiFairHandler, unwrap_network
from monai_multifair.handlers.prepare_batch import MultimodalPrepareBatch

__all__ = ["MultiFairHandler", "MultimodalPrepareBatch", "unwrap_network"]
