"""Input checking and encoding shared by the fairness metrics, the bootstrap and the audit report.

Everything here works on the host (numpy/pandas). User errors raise
:class:`~monai_multifair.errors.MultiFairError` naming the argument, the rule and the offending value.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from monai_multifair.errors import MultiFairError

METRIC_NAMES: tuple[str, ...] = (
    "auc",
    "accuracy",
    "tpr",
    "fpr",
    "selection_rate",
    "count",
    "prevalence",
    "calibration_error",
)
"""Columns of every per-group metric table, in order."""

SUMMARY_NAMES: tuple[str, ...] = ("auc", "es_auc", "worst_group_auc", "auc_gap", "dpd", "deodds")
"""Cross-group summary statistics (one number per cohort or bootstrap replicate)."""


MIN_SUPPORT = 30
"""Default minimum support of the bootstrap: a group with fewer samples gets a :class:`SmallGroupWarning`."""


class UndefinedGroupMetricWarning(UserWarning):
    """A metric is undefined (NaN) for some groups: too few samples or a class is missing.

    The groups are named in the message. Undefined values stay NaN and are left out of the cross-group
    summaries (ES-AUC, worst-group AUC, gaps, DPD, DEOdds); they are never replaced by a number.
    """


class SmallGroupWarning(UndefinedGroupMetricWarning):
    """Some groups have fewer samples than the bootstrap's minimum support (``min_support``).

    Their metrics are defined, but their bootstrap intervals are wide and the intervals of
    group-extreme statistics (worst-group AUC, gaps, ES-AUC, DPD, DEOdds) can exclude their own
    estimate; such intervals are flagged (``ci_flag``). A subclass of
    :class:`UndefinedGroupMetricWarning`, so code that collects the notes about groups collects these.
    """


_F = TypeVar("_F", bound=Callable[..., Any])


def keyword_only_features(func: _F) -> _F:
    """Turn a third positional argument into a ``TypeError`` that says how to call ``func``.

    The metrics take ``sensitive_features`` as a keyword argument, as fairlearn's do; the wrapper
    keeps ``func``'s signature (``inspect.signature`` follows ``__wrapped__``).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 2:
            raise TypeError(
                f"{func.__name__}() takes `sensitive_features` (and every setting) as a keyword argument, "
                f"as fairlearn's metrics do: {func.__name__}(y_true, y_score, sensitive_features=groups); "
                f"got {len(args)} positional arguments"
            )
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def to_numpy(value: Any, name: str) -> np.ndarray:
    """Convert an array-like (numpy, list, pandas, torch tensor) to a numpy array."""
    if value is None:
        raise MultiFairError(f"expected `{name}` to be an array, got None")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch here
        value = value.detach().cpu().numpy()
    if isinstance(value, (pd.Series, pd.DataFrame, pd.Index)):
        return value.to_numpy()
    return np.asarray(value)


def _row_list(mask: np.ndarray, limit: int = 5) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (", ..." if rows.size > limit else "")


@dataclass(frozen=True)
class Predictions:
    """Validated labels and scores.

    Attributes:
        positive: ``[N]`` int64, 1 where the sample belongs to the positive class ``pos_label``.
        p: ``[N]`` float64 score of the positive class (its probability when probabilities are given).
        scores: ``[N, C]`` float64 class scores when there are ``C >= 3`` classes, else ``None``.
        labels: ``[N]`` int64 class ids in ``[0, C)`` when multi-class, else ``None``.
        pos_label: the positive label (a ``y_true`` value for 1-D scores, a column index for 2-D).
    """

    positive: np.ndarray
    p: np.ndarray
    scores: np.ndarray | None
    labels: np.ndarray | None
    pos_label: Any

    @property
    def n(self) -> int:
        return int(self.p.shape[0])

    @property
    def multiclass(self) -> bool:
        return self.scores is not None

    @property
    def n_classes(self) -> int:
        return 2 if self.scores is None else int(self.scores.shape[1])


def prepare_predictions(
    y_true: Any, y_score: Any, *, pos_label: Any = 1, require_probabilities: bool = True
) -> Predictions:
    """Validate ``y_true`` / ``y_score`` and derive the positive-class indicator and score.

    * ``y_score`` of shape ``[N]``: the score of the positive class; ``y_true`` holds at most two
      distinct values and ``y_true == pos_label`` marks the positives.
    * ``y_score`` of shape ``[N, C]``: class scores; ``y_true`` holds integer class ids in ``[0, C)``
      and ``pos_label`` is the column of the positive class. ``C == 2`` is the binary case;
      ``C >= 3`` is multi-class (AUC one-vs-rest macro; thresholded metrics one-vs-rest on
      ``pos_label``).

    Args:
        y_true: ``[N]`` labels.
        y_score: ``[N]`` or ``[N, C]`` scores.
        pos_label: positive label (1-D scores) or positive column (2-D scores).
        require_probabilities: demand scores in ``[0, 1]`` (thresholded metrics and calibration).

    Returns:
        The validated :class:`Predictions`.
    """
    y = to_numpy(y_true, "y_true")
    s = to_numpy(y_score, "y_score")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise MultiFairError(f"expected `y_true` of shape [N], got shape {y.shape}")
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim not in (1, 2):
        raise MultiFairError(f"expected `y_score` of shape [N] or [N, C], got shape {s.shape}")
    if s.shape[0] != y.shape[0]:
        raise MultiFairError(
            f"expected `y_true` and `y_score` to have the same number of samples, "
            f"got {y.shape[0]} and {s.shape[0]}"
        )
    if y.shape[0] == 0:
        raise MultiFairError("expected at least one sample, got `y_true` of length 0")
    try:
        s = s.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise MultiFairError(f"expected numeric `y_score`, got dtype {s.dtype}") from exc
    if not np.isfinite(s).all():
        bad = ~np.isfinite(s) if s.ndim == 1 else ~np.isfinite(s).all(axis=1)
        raise MultiFairError(
            f"expected finite `y_score`, got {int(bad.sum())} row(s) with NaN or inf (rows {_row_list(bad)})"
        )
    missing = pd.isna(y)
    if missing.any():
        raise MultiFairError(
            f"expected `y_true` without missing values, got {int(missing.sum())} NaN/None "
            f"(rows {_row_list(missing)})"
        )
    if y.dtype == bool:
        y = y.astype(np.int64)
    if require_probabilities and (s.min() < 0.0 or s.max() > 1.0):
        raise MultiFairError(
            "expected `y_score` to hold probabilities in [0, 1] (thresholded metrics and calibration "
            f"use them), got values in [{s.min():.4g}, {s.max():.4g}]; apply a sigmoid or softmax first"
        )

    if s.ndim == 1:
        values = pd.unique(y)
        if len(values) > 2:
            raise MultiFairError(
                f"expected at most two classes in `y_true` when `y_score` is 1-D, got {len(values)} "
                f"({sorted(map(str, values))[:6]}); pass [N, C] class scores for multi-class"
            )
        if len(values) == 2 and pos_label not in set(values.tolist()):
            raise MultiFairError(
                f"expected `pos_label` to be one of the `y_true` values {sorted(map(str, values))}, "
                f"got {pos_label!r}"
            )
        positive = (y == pos_label).astype(np.int64)
        return Predictions(positive=positive, p=s, scores=None, labels=None, pos_label=pos_label)

    n_classes = s.shape[1]
    if (
        not isinstance(pos_label, numbers.Integral)
        or isinstance(pos_label, bool)
        or not 0 <= pos_label < n_classes
    ):
        raise MultiFairError(
            f"expected `pos_label` to be a column index in [0, {n_classes}) for [N, {n_classes}] "
            f"`y_score`, got {pos_label!r}"
        )
    if not np.issubdtype(y.dtype, np.number):
        raise MultiFairError(
            f"expected integer class ids in [0, {n_classes}) in `y_true` for [N, {n_classes}] `y_score`, "
            f"got dtype {y.dtype}"
        )
    labels = y.astype(np.int64)
    bad = (labels != y) | (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise MultiFairError(
            f"expected integer class ids in [0, {n_classes}) in `y_true` for [N, {n_classes}] `y_score`, "
            f"got {int(bad.sum())} other value(s) (rows {_row_list(bad)})"
        )
    positive = (labels == pos_label).astype(np.int64)
    p = np.ascontiguousarray(s[:, pos_label])
    if n_classes == 2:
        return Predictions(positive=positive, p=p, scores=None, labels=None, pos_label=int(pos_label))
    return Predictions(positive=positive, p=p, scores=s, labels=labels, pos_label=int(pos_label))


@dataclass(frozen=True)
class Groups:
    """Sensitive-feature groups encoded the way fairlearn's ``MetricFrame.by_group`` indexes them.

    One feature gives one group per observed value (sorted); several features give the full product
    of their sorted values (intersections), empty combinations included, exactly as fairlearn does.

    Attributes:
        ids: ``[N]`` int64 group id of each sample, the position of its group in ``index``.
        index: the ``pandas`` index of ``MetricFrame.by_group`` (``Index`` or ``MultiIndex``).
        labels: readable group names, e.g. ``"race=Black & sex=F"``.
        frame: the sensitive features as a DataFrame with fairlearn's column names.
    """

    ids: np.ndarray
    index: pd.Index
    labels: tuple[str, ...]
    frame: pd.DataFrame

    @property
    def num_groups(self) -> int:
        return len(self.labels)

    @property
    def names(self) -> list[str]:
        return [str(c) for c in self.frame.columns]


def sensitive_frame(sensitive_features: Any, n: int, name: str = "sensitive_features") -> pd.DataFrame:
    """Turn sensitive features into a DataFrame, naming columns as fairlearn's ``MetricFrame`` does.

    A Series keeps its name (else ``sensitive_feature_0``), a DataFrame or dict its column names, a
    1-D array becomes ``sensitive_feature_0`` and a 2-D array ``sensitive_feature_<i>``.
    Missing values (NaN/None) are an error naming the column and the number of rows.
    """
    if isinstance(sensitive_features, pd.DataFrame):
        frame = sensitive_features.copy()
    elif isinstance(sensitive_features, pd.Series):
        col = sensitive_features.name if sensitive_features.name is not None else "sensitive_feature_0"
        frame = pd.DataFrame({col: sensitive_features.to_numpy(dtype=object)})
    elif isinstance(sensitive_features, Mapping):
        frame = pd.DataFrame({k: to_numpy(v, f"{name}[{k!r}]") for k, v in sensitive_features.items()})
    else:
        arr = to_numpy(sensitive_features, name)
        if arr.ndim == 1:
            frame = pd.DataFrame({"sensitive_feature_0": arr})
        elif arr.ndim == 2:
            frame = pd.DataFrame({f"sensitive_feature_{i}": arr[:, i] for i in range(arr.shape[1])})
        else:
            raise MultiFairError(f"expected `{name}` with 1 or 2 dimensions, got shape {arr.shape}")
    if frame.shape[1] == 0:
        raise MultiFairError(f"expected at least one column in `{name}`, got none")
    repeated = sorted({str(c) for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise MultiFairError(f"expected distinct column names in `{name}`, got {repeated} more than once")
    for col in frame.columns:
        if not isinstance(col, str):
            raise MultiFairError(f"expected string column names in `{name}`, got {col!r}")
    if len(frame) != n:
        raise MultiFairError(f"expected `{name}` to have {n} rows (one per sample), got {len(frame)}")
    frame = frame.reset_index(drop=True)
    for col in frame.columns:
        column = frame[col]
        if isinstance(column.dtype, pd.CategoricalDtype):
            frame[col] = column.to_numpy(dtype=object)
        missing = pd.isna(frame[col]).to_numpy()
        if missing.any():
            raise MultiFairError(
                f"sensitive feature column {col!r} has {int(missing.sum())} missing value(s) (NaN/None) "
                f"in rows {_row_list(missing)}; every sample needs a group: fill or drop those rows"
            )
    return frame


def _sorted_values(column: pd.Series, col: str) -> tuple[np.ndarray, np.ndarray]:
    values = column.to_numpy()
    try:
        uniques, codes = np.unique(values, return_inverse=True)
    except TypeError as exc:
        kinds = sorted({type(v).__name__ for v in values})
        raise MultiFairError(
            f"sensitive feature column {col!r} mixes value types {kinds} that cannot be sorted; "
            "use one type per column"
        ) from exc
    return uniques, codes.reshape(-1).astype(np.int64)


def prepare_groups(sensitive_features: Any, n: int, name: str = "sensitive_features") -> Groups:
    """Encode sensitive features into group ids matching fairlearn's ``by_group`` index."""
    frame = sensitive_frame(sensitive_features, n, name)
    names = [str(c) for c in frame.columns]
    uniques, codes = zip(*(_sorted_values(frame[c], c) for c in names), strict=True)
    if len(names) == 1:
        index: pd.Index = pd.Index(uniques[0], name=names[0])
        ids = codes[0]
        labels = tuple(f"{names[0]}={v}" for v in uniques[0])
    else:
        index = pd.MultiIndex.from_product(list(uniques), names=names)
        ids = np.ravel_multi_index(codes, tuple(len(u) for u in uniques)).astype(np.int64)
        labels = tuple(" & ".join(f"{c}={v}" for c, v in zip(names, key, strict=True)) for key in index)
    return Groups(ids=ids, index=index, labels=labels, frame=frame)


def groups_from_ids(groups: Any, n: int, group_labels: Any = None) -> Groups:
    """Wrap integer group ids ``[N]`` (e.g. from :class:`~monai_multifair.core.GroupEncoder`).

    The number of groups is ``len(group_labels)`` when labels are given, else ``max(id) + 1``; ids
    without samples are empty groups (undefined metrics).
    """
    ids = to_numpy(groups, "groups")
    if ids.ndim != 1 or ids.shape[0] != n:
        raise MultiFairError(f"expected `groups` of shape [{n}], got shape {ids.shape}")
    if ids.dtype == bool:
        raise MultiFairError(
            "expected integer group ids in `groups`, got dtype bool: True/False are not group ids; "
            "pass `groups.astype(int)` if you mean groups 0 and 1"
        )
    if not np.issubdtype(ids.dtype, np.integer):
        raise MultiFairError(f"expected integer group ids in `groups`, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise MultiFairError(f"expected group ids >= 0 in `groups`, got {int(ids.min())}")
    if group_labels is None:
        k = int(ids.max()) + 1 if ids.size else 1
        labels = tuple(str(g) for g in range(k))
        keys: list[Any] = list(range(k))
    else:
        keys = [str(x) for x in to_numpy(group_labels, "group_labels").tolist()]
        labels = tuple(keys)
        k = len(labels)
        if k == 0:
            raise MultiFairError("expected at least one entry in `group_labels`, got none")
        if ids.size and ids.max() >= k:
            raise MultiFairError(
                f"expected group ids in [0, {k}) (len(group_labels) = {k}), got {int(ids.max())}"
            )
    index = pd.Index(keys, name="group")
    frame = pd.DataFrame({"group": np.asarray(keys, dtype=object)[ids] if ids.size else []})
    return Groups(ids=ids, index=index, labels=labels, frame=frame)


def prepare_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
    """Validate optional non-negative finite sample weights ``[N]``."""
    if sample_weight is None:
        return None
    w = to_numpy(sample_weight, "sample_weight").astype(np.float64)
    if w.shape != (n,):
        raise MultiFairError(f"expected `sample_weight` of shape [{n}], got shape {w.shape}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise MultiFairError(
            f"expected finite non-negative `sample_weight`, got {int(bad.sum())} other value(s) "
            f"(rows {_row_list(bad)})"
        )
    return w


def prepare_patient_ids(patient_ids: Any, n: int) -> tuple[np.ndarray, int]:
    """Encode patient ids ``[N]`` as codes ``[N]`` in ``[0, P)`` (sorted unique order) and ``P``."""
    ids = to_numpy(patient_ids, "patient_ids")
    if ids.shape != (n,):
        raise MultiFairError(f"expected `patient_ids` of shape [{n}], got shape {ids.shape}")
    missing = pd.isna(ids)
    if missing.any():
        raise MultiFairError(
            f"expected `patient_ids` without missing values, got {int(missing.sum())} NaN/None "
            f"(rows {_row_list(missing)})"
        )
    codes, uniques = pd.factorize(ids, sort=True)
    return codes.astype(np.int64), len(uniques)


def check_threshold(threshold: Any) -> float:
    """Validate the operating threshold (a probability in [0, 1])."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise MultiFairError(f"expected `threshold` in [0, 1], got {threshold!r}")
    return float(threshold)


def check_int(value: Any, name: str, minimum: int) -> int:
    """Validate an integer setting ``>= minimum`` (bools refused); returns it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise MultiFairError(f"expected integer `{name}` >= {minimum}, got {value!r}")
    return int(value)


def check_min_group_size(min_group_size: Any) -> int:
    """Validate the minimum support (an integer >= 1)."""
    return check_int(min_group_size, "min_group_size", 1)


def check_device(device: Any) -> Any:
    """Validate a torch device (``None`` is the CPU): a known device type that is available here.

    Returns:
        The ``torch.device``.
    """
    import torch

    if device is None:
        return torch.device("cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise MultiFairError(
            f"expected `device` to be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise MultiFairError(
                f"`device` {device!r}: CUDA is not available on this machine (torch.cuda.is_available() is "
                "False); use 'cpu'"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise MultiFairError(
                f"`device` {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise MultiFairError(f"`device` {device!r}: MPS is not available on this machine; use 'cpu'")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise MultiFairError(f"expected `device` of type 'cpu', 'cuda' or 'mps', got {device!r}")
    return parsed


def check_alpha(alpha: Any) -> float:
    """Validate the ES-AUC scale ``alpha >= 0``."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha >= 0:
        raise MultiFairError(f"expected `alpha` >= 0, got {alpha!r}")
    return float(alpha)


def check_calibration_bins(calibration_bins: Any) -> int:
    """Validate the number of equal-width calibration bins (an integer >= 1)."""
    return check_int(calibration_bins, "calibration_bins", 1)


def calibration_edges(calibration_bins: int) -> np.ndarray:
    """Bin edges of the calibration error: ``np.linspace(0, 1, calibration_bins + 1)``."""
    return np.linspace(0.0, 1.0, calibration_bins + 1)


def calibration_bin_ids(p: np.ndarray, calibration_bins: int) -> np.ndarray:
    """Bin of each probability, as ``sklearn.calibration.calibration_curve(strategy="uniform")``.

    Bin ``b`` holds ``p`` in ``(e_b, e_{b+1}]`` (the first bin also holds 0), where ``e`` are the
    equal-width edges of :func:`calibration_edges`.
    """
    return np.searchsorted(calibration_edges(calibration_bins)[1:-1], p, side="left").astype(np.int64)
