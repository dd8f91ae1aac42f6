"""Fairness audit reports: :class:`AuditReport` as self-contained HTML, Markdown and JSON.

Build one from predictions (:meth:`AuditReport.from_predictions`) or a predictions file
(:meth:`AuditReport.from_predictions_file`, also the ``multifair report`` command).
"""

from monai_multifair.report.audit import AuditReport, read_predictions
from monai_multifair.report.training import TrainingStats, parse_training_stats

__all__ = ["AuditReport", "TrainingStats", "parse_training_stats", "read_predictions"]
