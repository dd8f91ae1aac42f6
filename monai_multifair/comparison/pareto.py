"""Selection criteria over a set of candidates: MEDFAIR's distance to optimal, and the AUC / ES-AUC Pareto
front with its plot (``multifair compare --pareto``).

**Distance to optimal (DTO).** MEDFAIR (Zong, Yang & Hospedales, "MEDFAIR: Benchmarking Fairness for
Medical Imaging", ICLR 2023; ``DTO`` in ``notebooks/results_analysis.ipynb`` of github.com/ys-zong/MEDFAIR)
selects, among candidate models, the one closest to the *utopia point*: each candidate is a vector of
per-group validation AUCs ``a_{c,g}``; the utopia point takes, per group, the best AUC of any candidate,
``u_g = max_c a_{c,g}``; each AUC is normalised by it and the distance is Euclidean:

``DTO_c = sqrt(sum_g (1 - a_{c,g} / u_g)^2)``   (smaller is better; 0 = best in every group at once)

The value depends on the candidate set (the utopia point is theirs), so it ranks candidates of one
selection (the trials of one study), never runs of different comparisons.

**Pareto front.** A candidate is on the front of two objectives (both maximised, here validation AUC
and ES-AUC) when no other candidate is at least as good in both and better in one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monai_multifair.errors import MultiFairError

__all__ = ["distance_to_optimal", "pareto_front", "pareto_plot"]


def distance_to_optimal(group_aucs: Sequence[Mapping[str, float]]) -> list[float]:
    """MEDFAIR's distance to optimal of each candidate (module docstring).

    Args:
        group_aucs: per candidate, ``{group: validation AUC}`` (the same groups for every candidate).

    Returns:
        One distance per candidate, in order; NaN for a candidate with an undefined (NaN or missing) group
        AUC, and for every candidate of a group whose best AUC is not positive (no utopia to scale by).

    Raises:
        MultiFairError: no candidates, or a candidate without any group.

    Example:
        >>> [round(d, 4) for d in distance_to_optimal([{"a": 0.8, "b": 0.6}, {"a": 0.7, "b": 0.7}])]
        [0.1429, 0.125]
    """
    if not group_aucs:
        raise MultiFairError("expected at least one candidate for the distance to optimal, got none")
    groups = sorted({g for candidate in group_aucs for g in candidate})
    if not groups:
        raise MultiFairError(
            "expected per-group AUCs for the distance to optimal, got candidates without groups"
        )
    table = np.array(
        [[_number(candidate.get(g)) for g in groups] for candidate in group_aucs], dtype=np.float64
    )  # [candidates, groups]
    utopia = np.max(np.where(np.isnan(table), -np.inf, table), axis=0)  # per group, undefined left out
    utopia = np.where(utopia > 0, utopia, np.nan)
    distances = np.sqrt(np.sum((1.0 - table / utopia) ** 2, axis=1))
    return [float(d) for d in distances]


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points on the Pareto front of two maximised objectives, by the first objective.

    A point with an undefined coordinate is never on the front; of identical points, every copy is on it.

    Example:
        >>> pareto_front([(0.8, 0.7), (0.85, 0.6), (0.7, 0.65), (0.8, 0.75)])
        [3, 1]
    """
    defined = [i for i, (x, y) in enumerate(points) if not (math.isnan(x) or math.isnan(y))]
    front = [
        i
        for i in defined
        if not any(
            points[j][0] >= points[i][0]
            and points[j][1] >= points[i][1]
            and (points[j][0] > points[i][0] or points[j][1] > points[i][1])
            for j in defined
        )
    ]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1], i))


def pareto_plot(name: str, trials: Mapping[str, Sequence[Mapping[str, Any]]]) -> Any:
    """The trials of every arm on one data set on the validation AUC / ES-AUC plane, with the Pareto front
    of all of them (a matplotlib ``Figure``).

    Args:
        name: the data set.
        trials: ``{arm: [{"auc", "es_auc", "selected"}, ...]}`` (``selected``: the arm's chosen trial).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.6))
    ax = fig.add_subplot()
    everything: list[tuple[float, float]] = []
    for k, (arm, points) in enumerate(trials.items()):
        xy = [(_number(p.get("auc")), _number(p.get("es_auc"))) for p in points]
        everything += xy
        color = f"C{k % 10}"
        ax.scatter([x for x, _ in xy], [y for _, y in xy], s=28, color=color, alpha=0.75, label=arm)
        chosen = [(x, y) for (x, y), p in zip(xy, points) if p.get("selected")]
        if chosen:
            ax.scatter(*zip(*chosen), s=140, facecolors="none", edgecolors=color, linewidths=1.8)
    front = pareto_front(everything)
    if front:
        xs, ys = [everything[i][0] for i in front], [everything[i][1] for i in front]
        ax.step(xs, ys, where="pre", color="black", linewidth=1.0, linestyle="--", label="Pareto front")
    ax.set_xlabel("validation AUC")
    ax.set_ylabel("validation ES-AUC")
    ax.set_title(f"{name}: tuning trials (circled: selected)")
    ax.grid(linestyle=":")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
