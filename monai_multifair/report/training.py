"""Training statistics for the audit report: modulation factors and guide AUCs over training.

The statistics are per-step values as the MultiFair modulator reports them (``mod.stats()``), one
column per scalar, named

* ``modality_scale/<modality>``: the modality-level coefficient of each modality;
* ``group_factor/<modality>/<group>``: the group-level factor of each modality and group;
* ``guide_group_auc/<modality>/<group>``: the AUC of each modality's guide head inside each group;
* ``gate``: the gate between the two levels.

They may come as a ``pandas.DataFrame`` (one row per step; the index, or a ``step`` column, is the
step), a mapping of column name to per-step sequence, or a sequence of per-step mappings (records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = ["TrainingStats", "parse_training_stats"]

_PATTERNS = (
    "modality_scale/<modality>",
    "group_factor/<modality>/<group>",
    "guide_group_auc/<modality>/<group>",
    "gate",
)


@dataclass(frozen=True)
class TrainingStats:
    """Parsed training statistics.

    Attributes:
        steps: ``[T]`` step of each row.
        modality_scale: ``{modality: [T] values}``.
        group_factor: ``{modality: {group: [T] values}}``.
        guide_group_auc: ``{modality: {group: [T] values}}``.
        gate: ``[T]`` values or ``None``.
        other_columns: names of columns present but not shown (e.g. losses).
    """

    steps: list[float]
    modality_scale: dict[str, list[float]]
    group_factor: dict[str, dict[str, list[float]]]
    guide_group_auc: dict[str, dict[str, list[float]]]
    gate: list[float] | None
    other_columns: list[str]

    def final_guide_auc(self) -> pd.DataFrame:
        """Modality-by-group table of the last defined guide AUC of each modality and group."""
        table = {
            modality: {group: _last_defined(values) for group, values in by_group.items()}
            for modality, by_group in self.guide_group_auc.items()
        }
        return pd.DataFrame.from_dict(table, orient="index")

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "modality_scale": self.modality_scale,
            "group_factor": self.group_factor,
            "guide_group_auc": self.guide_group_auc,
            "gate": self.gate,
            "final_guide_group_auc": {
                m: {g: _last_defined(v) for g, v in by_group.items()}
                for m, by_group in self.guide_group_auc.items()
            },
            "other_columns": self.other_columns,
        }


def _last_defined(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=float)
    defined = arr[~np.isnan(arr)]
    return float(defined[-1]) if defined.size else float("nan")


def _as_frame(stats: Any) -> pd.DataFrame:
    if isinstance(stats, pd.DataFrame):
        frame = stats.copy()
    elif isinstance(stats, Mapping):
        frame = pd.DataFrame(
            {str(k): pd.Series(np.asarray(v, dtype=object).ravel()) for k, v in stats.items()}
        )
    elif isinstance(stats, Sequence) and not isinstance(stats, (str, bytes)):
        if not all(isinstance(row, Mapping) for row in stats):
            raise MultiFairError(
                "expected `training_stats` records to be mappings of statistic name to value"
            )
        frame = pd.DataFrame.from_records(list(stats))
    else:
        raise MultiFairError(
            "expected `training_stats` to be a DataFrame, a mapping of name to per-step values, or a "
            f"sequence of per-step mappings, got {type(stats).__name__}"
        )
    if "step" in frame.columns:
        frame = frame.set_index("step")
    return frame


def parse_training_stats(stats: Any) -> TrainingStats:
    """Validate and split training statistics by family (see the module docstring).

    Raises:
        MultiFairError: no recognised column, a malformed name, or non-numeric values.
    """
    frame = _as_frame(stats)
    if len(frame) == 0:
        raise MultiFairError("expected at least one row (step) in `training_stats`, got none")
    modality_scale: dict[str, list[float]] = {}
    group_factor: dict[str, dict[str, list[float]]] = {}
    guide: dict[str, dict[str, list[float]]] = {}
    gate = None
    other = []
    for column in frame.columns:
        name = str(column)
        parts = name.split("/")
        family = parts[0]
        if family not in ("modality_scale", "group_factor", "guide_group_auc", "gate"):
            other.append(name)
            continue
        expected = {"modality_scale": 2, "group_factor": 3, "guide_group_auc": 3, "gate": 1}[family]
        if len(parts) != expected or not all(parts):
            pattern = next(p for p in _PATTERNS if p.split("/")[0] == family)
            raise MultiFairError(f"expected training statistic names like {pattern!r}, got {name!r}")
        try:
            values = pd.to_numeric(frame[column]).astype(float).tolist()
        except (TypeError, ValueError) as exc:
            raise MultiFairError(f"expected numeric values in training statistic {name!r}") from exc
        if family == "gate":
            gate = values
        elif family == "modality_scale":
            modality_scale[parts[1]] = values
        else:
            target = group_factor if family == "group_factor" else guide
            target.setdefault(parts[1], {})[parts[2]] = values
    if not (modality_scale or group_factor or guide or gate is not None):
        hint = close_match_hint(
            other[0].split("/")[0], ["modality_scale", "group_factor", "guide_group_auc", "gate"]
        )
        raise MultiFairError(
            f"expected training statistics named {', '.join(map(repr, _PATTERNS))}; got columns "
            f"{other[:8]}{hint}"
        )
    try:
        steps = pd.to_numeric(pd.Series(frame.index)).astype(float).tolist()
    except (TypeError, ValueError) as exc:
        raise MultiFairError("expected numeric steps (index or `step` column) in `training_stats`") from exc
    return TrainingStats(
        steps=steps,
        modality_scale=modality_scale,
        group_factor=group_factor,
        guide_group_auc=guide,
        gate=gate,
        other_columns=other,
    )
