"""Training statistics for the audit report: modulation factors and guide AUCs over training.

The statistics are per-step values as the MultiFair modulator reports them (``mod.stats()``), one
column per scalar, named

* ``modality_scale/<modality>``: the modality-level coefficient of each modality;
* ``group_factor/<modality>/<group>``: the group-level factor of each modality and group;
* ``guide_group_auc/<modality>/<group>``: the AUC of each modality's guide head inside each group;
* ``gate``: the gate between the two levels.

They may come as a ``pandas.DataFrame`` (one row per step; the index, or a ``step`` column, is the
step), a mapping of column name to per-step sequence, or a sequence of per-step mappings (records).
An ``epoch`` column (as ``multifair train`` writes) gives the epoch of each row.

Guide AUCs are shown smoothed, never from one (possibly small) last batch: the mean of each
modality-by-group guide AUC over the rows of the last epoch (:meth:`TrainingStats.epoch_guide_auc`;
without an ``epoch`` column, over the last quarter of the rows). A mean is **near chance** when
``|AUC - 0.5| <= GUIDE_CHANCE_BAND`` (0.1) and **below chance** when ``AUC < 0.5 - GUIDE_CHANCE_BAND``:
either way the guide head has not learned to predict the label from that modality in that group, so
MultiFair's modality coefficients, computed from these AUCs, rest on noise. The report flags both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = ["GUIDE_CHANCE_BAND", "TrainingStats", "parse_training_stats"]

#: Half-width of the band around 0.5 in which an epoch-mean guide AUC counts as near chance.
GUIDE_CHANCE_BAND = 0.1

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
        epochs: ``[T]`` epoch of each row (the ``epoch`` column), or ``None``.
    """

    steps: list[float]
    modality_scale: dict[str, list[float]]
    group_factor: dict[str, dict[str, list[float]]]
    guide_group_auc: dict[str, dict[str, list[float]]]
    gate: list[float] | None
    other_columns: list[str]
    epochs: list[int] | None = None

    def smoothed_guide_auc(self) -> dict[str, dict[str, list[float]]]:
        """Per-row guide AUCs smoothed like :meth:`epoch_guide_auc`: each row holds the mean over its
        epoch's rows (without an ``epoch`` column, the trailing mean over a quarter of the rows)."""
        n = len(self.steps)
        out: dict[str, dict[str, list[float]]] = {}
        for modality, by_group in self.guide_group_auc.items():
            for group, values in by_group.items():
                series = pd.Series(values, dtype=float)
                if self.epochs is not None:
                    smoothed = series.groupby(pd.Series(self.epochs)).transform("mean")
                else:
                    smoothed = series.rolling(max(1, n // 4), min_periods=1).mean()
                out.setdefault(modality, {})[group] = smoothed.tolist()
        return out

    def epoch_guide_auc(self) -> dict[str, Any]:
        """Guide AUCs smoothed over the last epoch, and whether each is near or below chance.

        Returns:
            ``{"window": description of the rows averaged, "rows": their number, "mean": {modality:
            {group: mean AUC or NaN}}, "status": {modality: {group: "near chance" | "below chance" |
            None}}, "band": GUIDE_CHANCE_BAND}``.
        """
        n = len(self.steps)
        if self.epochs is not None:
            last = max(self.epochs)
            rows = np.asarray(self.epochs) == last
            window = f"mean over the {int(rows.sum())} logged step(s) of the last epoch ({last})"
        else:
            count = max(1, n // 4)
            rows = np.arange(n) >= n - count
            window = f"mean over the last {count} of {n} logged steps (no epoch column)"
        mean: dict[str, dict[str, float]] = {}
        status: dict[str, dict[str, str | None]] = {}
        for modality, by_group in self.guide_group_auc.items():
            for group, values in by_group.items():
                arr = np.asarray(values, dtype=float)[rows]
                value = float(np.nanmean(arr)) if np.any(~np.isnan(arr)) else float("nan")
                mean.setdefault(modality, {})[group] = value
                status.setdefault(modality, {})[group] = guide_status(value)
        return {
            "window": window,
            "rows": int(rows.sum()),
            "mean": mean,
            "status": status,
            "band": GUIDE_CHANCE_BAND,
        }

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
            "epochs": self.epochs,
            "epoch_guide_auc": self.epoch_guide_auc() if self.guide_group_auc else None,
            "smoothed_guide_group_auc": self.smoothed_guide_auc(),
        }


def guide_status(auc: float) -> str | None:
    """``"near chance"`` (``|auc - 0.5| <= GUIDE_CHANCE_BAND``), ``"below chance"`` (lower) or ``None``."""
    if np.isnan(auc):
        return None
    if abs(auc - 0.5) <= GUIDE_CHANCE_BAND:
        return "near chance"
    return "below chance" if auc < 0.5 else None


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
    epochs = None
    for column in frame.columns:
        name = str(column)
        if name == "epoch":
            try:
                epochs = pd.to_numeric(frame[column]).astype(int).tolist()
            except (TypeError, ValueError) as exc:
                raise MultiFairError(
                    "expected integer epochs in the `epoch` column of `training_stats`"
                ) from exc
            continue
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
        epochs=epochs,
    )
