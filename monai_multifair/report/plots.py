"""Figures of the audit report, rendered with matplotlib's Agg backend to base64 PNG strings.

Every function takes plain data (lists, dicts, DataFrames) from :class:`~monai_multifair.report.AuditReport`
and returns the PNG bytes base64-encoded, ready for ``<img src="data:image/png;base64,...">``.
No window is ever opened and the global pyplot state is not used.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "calibration_plot",
    "cohort_plot",
    "figure_png",
    "reliability_grid",
    "roc_plot",
    "save_png",
    "selection_rate_plot",
    "training_plot",
]

_DPI = 100


def save_png(fig: Figure, target: str | Path | BinaryIO) -> None:
    """Render ``fig`` with the Agg backend and write it as PNG (100 dpi, tight box) to a path or buffer."""
    FigureCanvasAgg(fig)
    fig.savefig(target, format="png", dpi=_DPI, bbox_inches="tight")


def figure_png(fig: Figure) -> str:
    """``fig`` as a base64-encoded PNG (see :func:`save_png`), ready for a ``data:image/png`` URI."""
    buffer = io.BytesIO()
    save_png(fig, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _legend(ax, n_entries: int) -> None:
    if n_entries:
        ax.legend(fontsize="small", loc="best", ncol=1 if n_entries <= 8 else 2)


def roc_plot(curves: Mapping[str, Mapping[str, Sequence[float] | float]]) -> str:
    """ROC curves, one line per group (``{label: {"fpr", "tpr", "auc"}}``), with the chance diagonal."""
    fig = Figure(figsize=(6.0, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    for label, curve in curves.items():
        style = {"color": "black", "linewidth": 2.0} if label == "overall" else {"linewidth": 1.2}
        ax.plot(curve["fpr"], curve["tpr"], label=f"{label} (AUC {curve['auc']:.3f})", **style)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title("ROC by group")
    _legend(ax, len(curves))
    return figure_png(fig)


def calibration_plot(bins: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Reliability diagram: mean predicted probability vs observed positive rate per bin and group."""
    fig = Figure(figsize=(6.0, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    for label, data in bins.items():
        mean_p = np.asarray(data["mean_predicted"], dtype=float)
        frac = np.asarray(data["fraction_positive"], dtype=float)
        keep = ~np.isnan(mean_p)
        style = {"color": "black", "linewidth": 2.0} if label == "overall" else {"linewidth": 1.2}
        ax.plot(mean_p[keep], frac[keep], marker="o", markersize=3, label=label, **style)
    ax.set(xlabel="mean predicted probability", ylabel="fraction of positives", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title("Calibration by group")
    _legend(ax, len(bins))
    return figure_png(fig)


def reliability_grid(bins: Mapping[str, Mapping[str, Sequence[float]]], columns: int = 3) -> str:
    """One reliability diagram per group (``{label: {"mean_predicted", "fraction_positive", "weight",
    "ece"}}``): observed positive rate vs mean predicted probability per bin, marker area by bin weight."""
    labels = list(bins)
    columns = max(1, min(columns, len(labels)))
    rows = math.ceil(len(labels) / columns)
    fig = Figure(figsize=(3.2 * columns, 3.0 * rows))
    for i, label in enumerate(labels):
        data = bins[label]
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
        mean_p = np.asarray(data["mean_predicted"], dtype=float)
        frac = np.asarray(data["fraction_positive"], dtype=float)
        weight = np.asarray(data["weight"], dtype=float)
        keep = ~np.isnan(mean_p)
        size = 12 + 120 * weight[keep] / max(float(weight.sum()), 1e-12)
        ax.plot(mean_p[keep], frac[keep], color="#4c72b0", linewidth=1)
        ax.scatter(mean_p[keep], frac[keep], s=size, color="#4c72b0")
        ece = data.get("ece")
        title = label if ece is None else f"{label}\nECE {ece:.3f}"
        ax.set_title(title, fontsize="small")
        ax.set(xlim=(0, 1), ylim=(0, 1.01))
        ax.tick_params(labelsize="x-small")
        if i % columns == 0:
            ax.set_ylabel("fraction of positives", fontsize="small")
        if i >= len(labels) - columns:
            ax.set_xlabel("mean predicted", fontsize="small")
    fig.tight_layout()
    return figure_png(fig)


def _bar(values: pd.DataFrame, title: str, ylabel: str, threshold: float | None = None) -> str:
    """Horizontal bars per group: column ``estimate`` with optional ``lower``/``upper`` error bars."""
    height = max(2.5, 0.35 * len(values) + 1.2)
    fig = Figure(figsize=(6.5, height))
    ax = fig.add_subplot()
    y = np.arange(len(values))
    est = values["estimate"].to_numpy(dtype=float)
    xerr = None
    if {"lower", "upper"} <= set(values.columns):
        lower = values["lower"].to_numpy(dtype=float)
        upper = values["upper"].to_numpy(dtype=float)
        xerr = np.nan_to_num(np.vstack([est - lower, upper - est]).clip(min=0))
    ax.barh(y, np.nan_to_num(est), xerr=xerr, color="#4c72b0", ecolor="black", capsize=3)
    for yi, value in zip(y, est, strict=True):
        if math.isnan(value):
            ax.text(0.01, yi, "undefined", va="center", fontsize="small", color="firebrick")
    ax.set_yticks(y, [str(i) for i in values.index], fontsize="small")
    ax.invert_yaxis()
    ax.set(xlabel=ylabel, xlim=(0, 1))
    ax.set_title(title if threshold is None else f"{title} (threshold {threshold:g})")
    return figure_png(fig)


def selection_rate_plot(values: pd.DataFrame, threshold: float) -> str:
    """Selection rate ``P(p >= threshold | group)`` per group, with bootstrap intervals when present."""
    return _bar(values, "Selection rate by group", "selection rate", threshold)


def cohort_plot(cohort: pd.DataFrame) -> str:
    """Stacked bars of positives and negatives per group (``cohort`` columns ``n`` and ``positives``)."""
    height = max(2.5, 0.35 * len(cohort) + 1.2)
    fig = Figure(figsize=(6.5, height))
    ax = fig.add_subplot()
    y = np.arange(len(cohort))
    pos = cohort["positives"].to_numpy(dtype=float)
    neg = cohort["n"].to_numpy(dtype=float) - pos
    ax.barh(y, neg, color="#dd8452", label="negative")
    ax.barh(y, pos, left=neg, color="#55a868", label="positive")
    ax.set_yticks(y, [str(i) for i in cohort.index], fontsize="small")
    ax.invert_yaxis()
    ax.set(xlabel="samples")
    ax.set_title("Cohort composition")
    ax.legend(fontsize="small")
    return figure_png(fig)


def training_plot(
    steps: Sequence[float],
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    reference: Mapping[str, float] | None = None,
) -> str:
    """One panel per statistic family (``{panel title: {line label: values per step}}``) over training;
    ``reference`` draws a dotted horizontal line in the named panels (e.g. chance, 0.5, for AUCs)."""
    fig = Figure(figsize=(7.0, 3.0 * len(panels)))
    x = np.asarray(steps, dtype=float)
    for i, (title, lines) in enumerate(panels.items()):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        for label, values in lines.items():
            ax.plot(x, np.asarray(values, dtype=float), label=label, linewidth=1.2)
        if reference and title in reference:
            ax.axhline(reference[title], linestyle=":", color="grey", linewidth=1)
        ax.set(xlabel="step", title=title)
        _legend(ax, len(lines))
    fig.tight_layout()
    return figure_png(fig)
