"""What a run leaves behind for one split: predictions, metrics, the audit report, and the post-processed
decisions when the config asks for a post-processing method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.atomic_io import atomic_write_text
from monai_multifair.core.distributed import rank
from monai_multifair.engine.outputs import (
    REPORT_FILES,
    audit_report,
    predictions_frame,
    scores_of,
    test_metrics,
    write_json,
)
from monai_multifair.engine.run_parts import RunParts
from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import fairness_summary, fit_threshold
from monai_multifair.report import AuditReport

__all__ = ["decision_metrics", "operating_threshold", "postprocess", "write_split_results"]

_RULE_NAMES = {"youden": "Youden's J (max TPR - FPR)", "prevalence": "the validation prevalence"}


def operating_threshold(parts: RunParts) -> tuple[float, str]:
    """``(threshold, how it was chosen)`` from ``evaluation.threshold``: a number as it is, or a rule
    (``youden``, ``prevalence``) fitted on the validation split with the network as it is.

    Under ``torch.distributed`` every rank predicts its share and fits the same threshold.
    """
    setting = parts.config.evaluation.threshold
    if not isinstance(setting, str):
        return float(setting), "fixed by evaluation.threshold"
    probabilities, labels, _, _ = parts.predict("val")
    scores = probabilities[:, 1]  # the positive class (class 1), as the metrics use it
    threshold = fit_threshold((labels == 1).astype(np.int64), scores, setting)
    return (
        threshold,
        f"fitted on the validation split by {_RULE_NAMES[setting]} (evaluation.threshold: {setting})",
    )


def decision_metrics(
    labels: np.ndarray, decisions: np.ndarray, groups: np.ndarray, group_labels: list[str]
) -> dict[str, Any]:
    """Metrics of 0/1 decisions: accuracy, DPD, DEOdds, and per group the count, selection rate, TPR, FPR.

    A rate with an empty denominator (no positive, or no negative, sample in a group) is NaN.
    """
    summary = fairness_summary(labels, decisions.astype(float), groups, group_labels, threshold=0.5)
    by_group: dict[str, dict[str, float]] = {}
    for g, name in enumerate(group_labels):
        mask = groups == g
        y, d = labels[mask], decisions[mask]
        pos, neg = y == 1, y == 0
        by_group[name] = {
            "n": int(mask.sum()),
            "selection_rate": float(d.mean()) if mask.any() else float("nan"),
            "tpr": float(d[pos].mean()) if pos.any() else float("nan"),
            "fpr": float(d[neg].mean()) if neg.any() else float("nan"),
        }
    return {
        "accuracy": float((decisions == labels).mean()),
        "dpd": float(summary["dpd"]),
        "deodds": float(summary["deodds"]),
        "by_group": by_group,
    }


def postprocess(
    parts: RunParts, test_frame: pd.DataFrame, test_groups: np.ndarray, test_labels: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    """Fit the config's post-processor on the validation split (with the network as it is) and apply it
    to the test scores; returns ``(metrics section, test decisions)``.

    Raises:
        MultiFairError: a task that is not binary.
    """
    config = parts.config
    spec = config.postprocessing
    if "score" not in test_frame.columns:
        raise MultiFairError(
            f"postprocessing {spec.name!r} needs a binary task (one positive-class score), got "
            f"{parts.datasets['train'].num_classes} classes"
        )
    names = list(parts.datasets["train"].group_labels)
    probabilities, val_labels, val_groups, _ = parts.predict("val")
    processor = spec.create()
    processor.fit(scores_of(probabilities), val_labels, np.asarray(names, dtype=object)[val_groups])
    decisions = processor.predict(
        test_frame["score"].to_numpy(), np.asarray(names, dtype=object)[test_groups]
    )
    section = {
        "name": spec.name,
        "description": processor.describe(),
        "options": config.to_dict()["postprocessing"]["options"],
        "fitted_on": "val",
        "test": decision_metrics(test_labels, decisions, test_groups, names),
        "unchanged": "the scores, hence AUC, ES-AUC, worst-group AUC and group AUCs",
    }
    return section, decisions


def write_split_results(
    parts: RunParts,
    run_dir: Path,
    split: str,
    *,
    title: str,
    extra: Mapping[str, Any],
    training_stats: pd.DataFrame | None,
    files: dict[str, Path],
    notes: Sequence[str] = (),
) -> tuple[dict[str, Any], pd.DataFrame, AuditReport | None]:
    """Predict ``split`` with the network as it is; write predictions, metrics and reports.

    The operating threshold is ``evaluation.threshold``, or the rule it names fitted on the validation
    split (:func:`operating_threshold`); ``metrics`` records it (``threshold``, ``threshold_rule``,
    ``threshold_source``). ``notes`` are added to ``metrics["notes"]`` (e.g. a checkpoint loaded
    without an integrity record).

    Returns ``(metrics, predictions frame, report)``; ``files`` gains the paths written. Under
    ``torch.distributed`` every rank predicts its share and gets the metrics and predictions; rank 0
    alone writes the files and builds the report (``None`` on the other ranks).
    """
    config = parts.config
    dataset = parts.datasets[split]
    threshold, threshold_source = operating_threshold(parts)
    probabilities, labels, groups, ids = parts.predict(split)
    frame = predictions_frame(dataset, probabilities, labels, groups, ids)
    metrics: dict[str, Any] = {
        "split": split,
        **test_metrics(config, dataset, probabilities, labels, groups, threshold=threshold),
    }
    metrics.update(extra)
    metrics["notes"] = list(dict.fromkeys([*metrics["notes"], *notes]))
    metrics.update(
        {
            "threshold": threshold,
            "threshold_rule": config.evaluation.threshold
            if isinstance(config.evaluation.threshold, str)
            else "fixed",
            "threshold_source": threshold_source,
            "alpha": config.evaluation.alpha,
        }
    )
    if config.postprocessing is not None and split == "test":
        metrics["postprocessing"], decisions = postprocess(parts, frame, groups, labels)
        frame["decision_postprocessed"] = decisions
    if rank() != 0:
        return metrics, frame, None
    if config.output.save_predictions:
        atomic_write_text(run_dir / "predictions.csv", frame.to_csv(index=False))
        files["predictions"] = run_dir / "predictions.csv"
    report = None
    if config.output.report_formats:
        stats = training_stats if training_stats is not None and len(training_stats) else None
        report, notes = audit_report(
            config,
            frame,
            dataset,
            title=title,
            training_stats=stats,
            threshold=threshold,
            threshold_source=threshold_source,
        )
        metrics["notes"] = list(dict.fromkeys([*metrics["notes"], *notes]))
        writers = {"html": report.to_html, "markdown": report.to_markdown, "json": report.to_json}
        for fmt in dict.fromkeys(config.output.report_formats):
            path = run_dir / REPORT_FILES[fmt]
            writers[fmt](path)
            files[f"report_{fmt}"] = path
    files["metrics"] = write_json(metrics, run_dir / "metrics.json")
    return metrics, frame, report
