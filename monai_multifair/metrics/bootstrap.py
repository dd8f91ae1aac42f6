"""Vectorised bootstrap confidence intervals with fairlearn's ``n_boot`` semantics.

fairlearn's ``MetricFrame(n_boot=B, ci_quantiles=q, random_state=r)`` draws ``B`` seeds from
``r`` (``numpy.random.default_rng(r).integers(0, 2**32 - 1, B, dtype=uint32)`` for an integer,
``r.randint(...)`` for a ``RandomState``, fresh entropy for ``None``), resamples the ``N`` rows with
replacement with each seed (``DataFrame.sample(frac=1, replace=True, random_state=seed)``, i.e.
``RandomState(seed).randint(0, N, N)``), evaluates the whole metric frame on every replicate, and
takes quantiles over the replicates (linear interpolation): ``numpy.nanquantile`` for the per-group
table (a group absent from a replicate is skipped) and ``numpy.quantile`` for the overall values,
``group_min``/``group_max``, ``difference`` and ``ratio`` (an undefined replicate makes the interval
NaN).

:func:`bootstrap_fairness` reproduces exactly those replicates (same seeds, same resampled rows) but
evaluates them all at once in torch: the resample counts of a chunk of replicates form a weight matrix
``R [b, N]``, every ratio metric is a matrix product per group and the AUCs come from one shared sort
(:class:`~monai_multifair.metrics.group_tensors.SortedAuc`). With the same ``random_state`` its intervals
equal fairlearn's to floating-point precision, on CPU or GPU.

Patient-level resampling (``patient_ids``): the ``P`` patients are resampled instead of rows, with
the same seeds (``RandomState(seed).randint(0, P, P)``); each sample is weighted by how often its
patient was drawn, so all samples of a patient stay together.

Small groups and group-extreme statistics: the intervals are percentile intervals (fairlearn's).
For statistics that take an extreme over groups (worst-group AUC, gaps, ES-AUC, DPD, DEOdds) the
bootstrap is biased when groups are small -- each replicate's minimum over many noisy group AUCs
lies below the observed one -- and the interval can exclude its own estimate. No other standard
interval repairs this (the basic interval leaves [0, 1], BCa's bias correction is infinite when every
replicate falls on one side), so the intervals stay percentile intervals and such intervals are
*flagged* (:func:`interval_flags`, the ``ci_flag`` column of :meth:`BootstrapResult.summary_ci` and
:meth:`BootstrapResult.gap_ci`); groups below ``min_support`` samples raise a
:class:`~monai_multifair.metrics.SmallGroupWarning`. See ``docs/howto/audit.md``.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import group_tensors
from monai_multifair.metrics._inputs import (
    METRIC_NAMES,
    MIN_SUPPORT,
    SUMMARY_NAMES,
    SmallGroupWarning,
    check_alpha,
    check_calibration_bins,
    check_int,
    check_min_group_size,
    check_threshold,
    keyword_only_features,
    prepare_groups,
    prepare_patient_ids,
    prepare_predictions,
    prepare_sample_weight,
)
from monai_multifair.metrics.fairness import point_estimate

__all__ = ["BootstrapResult", "bootstrap_fairness", "bootstrap_seeds", "interval_flags", "nanquantile"]

_COMPARE_METHODS = ("between_groups", "to_overall")
# Elements of the resample-count matrix materialised at once (bounds memory: ~8 bytes each, a few copies).
_CHUNK_ELEMENTS = 4_000_000
# An interval is flagged when fewer than this share of the replicates lie on one side of the estimate.
_BIAS_SHARE = 0.1


def nanquantile(samples: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """``numpy.nanquantile(samples, quantiles, axis=0)`` (linear rule), vectorised over the columns.

    numpy's ``nanquantile`` loops in Python over every column (``apply_along_axis``): 1,600 columns of
    a 200-group table took minutes. Here one sort (NaN last) and two gathers do all columns at once,
    with numpy's own interpolation formula, so the values are identical. A column without any value
    gives NaN (numpy would also warn).

    Args:
        samples: ``[B, ...]`` values, NaN where undefined.
        quantiles: ``Q`` quantiles in ``[0, 1]``.

    Returns:
        ``[Q, ...]``.

    Example:
        >>> x = np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0]])
        >>> nanquantile(x, [0.5]).tolist()
        [[2.0, 3.0]]
    """
    data = np.sort(np.asarray(samples, dtype=np.float64), axis=0)  # NaN sort last
    q = np.asarray(quantiles, dtype=np.float64).reshape((-1,) + (1,) * (data.ndim - 1))
    n = (~np.isnan(data)).sum(axis=0)
    last = np.maximum(n - 1, 0)
    virtual = (n - 1) * q  # numpy's "linear" virtual index
    below = np.floor(virtual).astype(np.int64)
    above_bounds = virtual >= (n - 1)
    lo = np.where(above_bounds, last, below)
    hi = np.where(above_bounds, last, np.minimum(below + 1, last))
    gamma = virtual - np.where(above_bounds, -1, below)  # as numpy: irrelevant where lo == hi
    a = np.take_along_axis(data, np.broadcast_to(lo, gamma.shape), axis=0)
    b = np.take_along_axis(data, np.broadcast_to(hi, gamma.shape), axis=0)
    diff = b - a
    out = a + diff * gamma
    out = np.where(gamma >= 0.5, b - diff * (1 - gamma), out)  # numpy's _lerp, for identical rounding
    return np.where(n == 0, np.nan, out)


def interval_flags(estimate: np.ndarray, samples: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> list:
    """Why each bootstrap interval is unreliable, or ``None`` when it is not flagged.

    An interval is flagged when its estimate lies outside it, or when fewer than 10 % of the
    replicates lie on one side of the estimate (a strong median bias: the bias correction of a BCa
    interval would exceed ``|z0| = 1.28``). Both happen to group-extreme statistics with small groups.
    Undefined estimates or intervals are not flagged (they are already undefined).

    Args:
        estimate: ``[S]`` point estimates.
        samples: ``[B, S]`` replicates.
        lower: ``[S]`` lower interval bounds.
        upper: ``[S]`` upper interval bounds.

    Returns:
        ``S`` entries, each ``None`` or a short reason.
    """
    reasons: list = []
    for j, est in enumerate(np.asarray(estimate, dtype=float)):
        column = samples[:, j]
        column = column[~np.isnan(column)]
        if np.isnan(est) or np.isnan(lower[j]) or np.isnan(upper[j]) or column.size == 0:
            reasons.append(None)
            continue
        share = float(np.mean(column < est) + 0.5 * np.mean(column == est))
        parts = []
        if est < lower[j] or est > upper[j]:
            parts.append("the estimate lies outside its interval")
        if share < _BIAS_SHARE or share > 1 - _BIAS_SHARE:
            parts.append(f"{share:.0%} of the replicates lie below the estimate")
        reasons.append("; ".join(parts) if parts else None)
    return reasons


def bootstrap_seeds(n_boot: int, random_state: int | np.random.RandomState | None) -> np.ndarray:
    """The ``n_boot`` per-replicate seeds exactly as fairlearn's ``generate_bootstrap_samples`` draws them.

    Args:
        n_boot: number of replicates ``B >= 1``.
        random_state: ``None`` (fresh entropy), an ``int``, or a ``numpy.random.RandomState`` (advanced).

    Returns:
        ``[B]`` uint32 seeds.
    """
    high = np.iinfo(np.uint32).max
    if random_state is None:
        return np.random.default_rng().integers(low=0, high=high, size=n_boot, dtype=np.uint32)
    if isinstance(random_state, np.random.RandomState):
        return random_state.randint(low=0, high=high, size=n_boot, dtype=np.uint32)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.default_rng(seed=int(random_state)).integers(
            low=0, high=high, size=n_boot, dtype=np.uint32
        )
    raise MultiFairError(
        f"expected `random_state` to be None, an int or a numpy.random.RandomState (as fairlearn), "
        f"got {type(random_state).__name__}"
    )


def _draws(seeds: np.ndarray, size: int) -> np.ndarray:
    """``[b, size]`` indices: ``RandomState(seed).randint(0, size, size)`` per seed (pandas ``sample``).

    Re-seeding one ``RandomState`` gives the same stream as constructing one per seed, faster.
    """
    state = np.random.RandomState()
    out = np.empty((len(seeds), size), dtype=np.int64)
    for i, seed in enumerate(seeds):
        state.seed(seed)
        out[i] = state.randint(0, size, size=size)
    return out


def _counts(draws: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of ``size`` items was drawn, per row of ``draws [b, n]``: ``[b, size]`` float64."""
    ones = torch.ones((1, 1), dtype=group_tensors.DTYPE, device=draws.device).expand(*draws.shape)
    return torch.zeros((draws.shape[0], size), dtype=group_tensors.DTYPE, device=draws.device).scatter_add_(
        1, draws, ones
    )


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap replicates of every metric and their fairlearn-style confidence intervals.

    The ``*_ci`` methods return one pandas object per entry of ``ci_quantiles``, shaped like
    fairlearn's ``MetricFrame`` counterparts (``by_group_ci`` a DataFrame per quantile, the others a
    Series indexed by metric).

    Attributes:
        n_boot: number of replicates ``B``.
        ci_quantiles: the quantiles, e.g. ``(0.025, 0.975)``.
        resampling: ``"rows"`` or ``"patients"``.
        group_index: index of the groups (fairlearn's ``by_group`` index).
        group_labels: readable group names.
        metrics: metric names (columns), :data:`METRIC_NAMES`.
        overall_samples: ``[B, M]`` overall value of each metric per replicate.
        by_group_samples: ``[B, K, M]`` per-group values per replicate (NaN where undefined).
        summary_samples: ``[B, S]`` cross-group summaries per replicate (:data:`SUMMARY_NAMES`).
        estimate: point estimates of the summaries on the observed data.
        by_group_estimate: ``[K, M]`` point estimates per group on the observed data.
        overall_estimate: ``[M]`` overall point estimates on the observed data.
        alpha: the ES-AUC ``alpha`` used.
        group_counts: ``[K]`` samples per group in the observed data.
        min_support: groups with fewer samples (but at least one) are small
            (:class:`~monai_multifair.metrics.SmallGroupWarning`).
    """

    n_boot: int
    ci_quantiles: tuple[float, ...]
    resampling: str
    group_index: pd.Index
    group_labels: tuple[str, ...]
    metrics: tuple[str, ...]
    overall_samples: np.ndarray
    by_group_samples: np.ndarray
    summary_samples: np.ndarray
    estimate: dict[str, float]
    by_group_estimate: np.ndarray
    overall_estimate: np.ndarray
    alpha: float
    group_counts: np.ndarray
    min_support: int

    @property
    def small_groups(self) -> list[str]:
        """Labels of the groups with at least one but fewer than ``min_support`` samples."""
        small = (self.group_counts > 0) & (self.group_counts < self.min_support)
        return [self.group_labels[g] for g in np.flatnonzero(small)]

    # fairlearn's two quantile rules.
    def _series_quantiles(self, samples: np.ndarray, names: Sequence[str]) -> list[pd.Series]:
        values = np.quantile(samples, self.ci_quantiles, axis=0)
        return [pd.Series(row, index=list(names), dtype=float) for row in values]

    def overall_ci(self) -> list[pd.Series]:
        """Quantiles of the overall metrics (``numpy.quantile``: NaN if any replicate is undefined)."""
        return self._series_quantiles(self.overall_samples, self.metrics)

    def by_group_ci(self) -> list[pd.DataFrame]:
        """Quantiles per group and metric (``numpy.nanquantile``: undefined replicates skipped)."""
        values = nanquantile(self.by_group_samples, self.ci_quantiles)
        return [pd.DataFrame(v, index=self.group_index, columns=list(self.metrics)) for v in values]

    def _reduce(self, how: Literal["min", "max"]) -> np.ndarray:
        fill = np.inf if how == "min" else -np.inf
        data = np.where(np.isnan(self.by_group_samples), fill, self.by_group_samples)
        out = data.min(axis=1) if how == "min" else data.max(axis=1)
        return np.where(np.isnan(self.by_group_samples).all(axis=1), np.nan, out)

    def group_min_ci(self) -> list[pd.Series]:
        """Quantiles of ``min_g`` of each metric (groups with NaN skipped, as pandas ``min``)."""
        return self._series_quantiles(self._reduce("min"), self.metrics)

    def group_max_ci(self) -> list[pd.Series]:
        """Quantiles of ``max_g`` of each metric (groups with NaN skipped, as pandas ``max``)."""
        return self._series_quantiles(self._reduce("max"), self.metrics)

    def _check_method(self, method: str) -> None:
        if method not in _COMPARE_METHODS:
            raise MultiFairError(f"expected `method` in {list(_COMPARE_METHODS)}, got {method!r}")

    def difference_ci(self, method: str = "between_groups") -> list[pd.Series]:
        """Quantiles of fairlearn's ``difference``: ``max - min`` over groups, or ``max_g |m_g - m|``."""
        self._check_method(method)
        if method == "between_groups":
            samples = self._reduce("max") - self._reduce("min")
        else:
            dev = np.abs(self.by_group_samples - self.overall_samples[:, None, :])
            samples = np.where(np.isnan(dev), -np.inf, dev).max(axis=1)
            samples = np.where(np.isnan(dev).all(axis=1), np.nan, samples)
        return self._series_quantiles(samples, self.metrics)

    def ratio_ci(self, method: str = "between_groups") -> list[pd.Series]:
        """Quantiles of fairlearn's ``ratio``: ``min / max`` over groups, or ``min_g`` of ``m_g / m`` (<= 1)."""
        self._check_method(method)
        with np.errstate(divide="ignore", invalid="ignore"):
            if method == "between_groups":
                samples = self._reduce("min") / self._reduce("max")
            else:
                ratio = self.by_group_samples / self.overall_samples[:, None, :]
                ratio = np.where(ratio > 1, 1.0 / ratio, ratio)
                samples = np.where(np.isnan(ratio), np.inf, ratio).min(axis=1)
                samples = np.where(np.isnan(ratio).all(axis=1), np.nan, samples)
        return self._series_quantiles(samples, self.metrics)

    def _with_flags(self, frame: pd.DataFrame, samples: np.ndarray) -> pd.DataFrame:
        lower = frame[self.ci_quantiles[0]].to_numpy(dtype=float)
        upper = frame[self.ci_quantiles[-1]].to_numpy(dtype=float)
        flags = interval_flags(frame["estimate"].to_numpy(dtype=float), samples, lower, upper)
        frame["ci_flag"] = pd.Series(flags, index=frame.index, dtype=object)  # None stays None
        return frame

    def summary_ci(self) -> pd.DataFrame:
        """Point estimate and quantiles of ES-AUC, worst-group AUC, AUC gap, DPD and DEOdds.

        Returns:
            DataFrame indexed by :data:`SUMMARY_NAMES` with columns ``estimate``, one per quantile
            (``numpy.quantile`` over replicates, as fairlearn's ``difference_ci``) and ``ci_flag``:
            ``None``, or why the interval is unreliable (:func:`interval_flags`).
        """
        values = np.quantile(self.summary_samples, self.ci_quantiles, axis=0)
        frame = pd.DataFrame(values.T, index=list(SUMMARY_NAMES), columns=list(self.ci_quantiles))
        frame.insert(0, "estimate", [self.estimate[name] for name in SUMMARY_NAMES])
        return self._with_flags(frame, self.summary_samples)

    def gap_ci(self) -> pd.DataFrame:
        """Point estimate and quantiles of each metric's gap ``max_g - min_g`` under the undefined policy.

        Unlike fairlearn's ``difference`` (which gives 0 when a single group is defined), a gap needs
        at least two groups with a defined value, else it is NaN; quantiles use ``numpy.quantile``
        (an undefined replicate makes the interval NaN), as :meth:`summary_ci`.

        Returns:
            DataFrame indexed by metric (``count`` excluded) with columns ``estimate``, one per quantile
            and ``ci_flag`` (as :meth:`summary_ci`).
        """
        names = [m for m in self.metrics if m != "count"]
        cols = [self.metrics.index(m) for m in names]
        samples = _gap(self.by_group_samples[:, :, cols], axis=1)
        values = np.quantile(samples, self.ci_quantiles, axis=0)
        frame = pd.DataFrame(values.T, index=names, columns=list(self.ci_quantiles))
        frame.insert(0, "estimate", _gap(self.by_group_estimate[None][:, :, cols], axis=1)[0])
        return self._with_flags(frame, samples)

    def undefined_fraction(self) -> pd.DataFrame:
        """Share of replicates in which each group's metric was undefined (rows: groups, then ``overall``)."""
        by_group = np.isnan(self.by_group_samples).mean(axis=0)
        overall = np.isnan(self.overall_samples).mean(axis=0)[None, :]
        index = [*self.group_labels, "overall"]
        return pd.DataFrame(np.vstack([by_group, overall]), index=index, columns=list(self.metrics))


def _gap(values: np.ndarray, axis: int) -> np.ndarray:
    """``max - min`` along ``axis`` over non-NaN entries; NaN where fewer than two are defined."""
    defined = ~np.isnan(values)
    hi = np.where(defined, values, -np.inf).max(axis=axis)
    lo = np.where(defined, values, np.inf).min(axis=axis)
    return np.where(defined.sum(axis=axis) >= 2, hi - lo, np.nan)


def _check_bootstrap_args(n_boot: Any, ci_quantiles: Any) -> tuple[int, tuple[float, ...]]:
    n_boot = check_int(n_boot, "n_boot", 1)
    if isinstance(ci_quantiles, (str, bytes)) or not isinstance(ci_quantiles, Sequence) or not ci_quantiles:
        raise MultiFairError(
            f"expected `ci_quantiles` to be a non-empty sequence of floats, got {ci_quantiles!r}"
        )
    for q in ci_quantiles:
        if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0.0 < q < 1.0:
            raise MultiFairError(f"expected every `ci_quantiles` entry in (0, 1), got {q!r}")
    return n_boot, tuple(float(q) for q in ci_quantiles)


def _count_chunks(
    seeds: np.ndarray,
    cohort: group_tensors.Cohort,
    patients: tuple[np.ndarray, int] | None,
    chunk_size: int,
) -> Iterator[torch.Tensor]:
    """Resample-count matrices ``[b, N]`` in cohort order, ``chunk_size`` replicates at a time."""
    device = cohort.device
    if patients is None:
        position = torch.as_tensor(cohort.position, device=device)
    else:
        codes_in_cohort = torch.as_tensor(patients[0][cohort.order], device=device)
    for start in range(0, len(seeds), chunk_size):
        chunk = seeds[start : start + chunk_size]
        if patients is None:
            # Map the drawn original rows to cohort positions before counting: no column permutation.
            draws = torch.from_numpy(_draws(chunk, cohort.n)).to(device)
            yield _counts(position[draws], cohort.n)
        else:
            draws = torch.from_numpy(_draws(chunk, patients[1])).to(device)
            yield _counts(draws, patients[1]).index_select(1, codes_in_cohort)


@keyword_only_features
def bootstrap_fairness(
    y_true: Any,
    y_score: Any,
    *,
    sensitive_features: Any,
    threshold: float = 0.5,
    n_boot: int = 1000,
    ci_quantiles: Sequence[float] = (0.025, 0.975),
    random_state: int | np.random.RandomState | None = None,
    patient_ids: Any = None,
    alpha: float = 1.0,
    min_group_size: int = 1,
    pos_label: Any = 1,
    sample_weight: Any = None,
    calibration_bins: int = 10,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    min_support: int = MIN_SUPPORT,
) -> BootstrapResult:
    """Bootstrap every group metric, the gaps, ES-AUC, DPD and DEOdds at once, in torch.

    Each replicate resamples the rows (or the patients, with ``patient_ids``) with replacement, with
    fairlearn's seeds; quantiles follow fairlearn's rules (module docstring).

    Args:
        y_true: ``[N]`` labels.
        y_score: ``[N]`` positive-class probabilities or ``[N, C]`` class probabilities.
        sensitive_features: groups (several columns: intersections), as fairlearn's ``MetricFrame``.
        threshold: operating threshold on the positive-class probability.
        n_boot: number of replicates ``B``.
        ci_quantiles: quantiles in ``(0, 1)``.
        random_state: ``None``, ``int`` or ``numpy.random.RandomState`` (as fairlearn).
        patient_ids: optional ``[N]`` patient of each sample; resample patients instead of rows.
        alpha: ES-AUC disparity scale.
        min_group_size: a group with fewer resampled rows is undefined in that replicate.
        pos_label: positive label (1-D scores) or positive column (2-D scores).
        sample_weight: optional ``[N]`` weights (multiplied by the resample counts).
        calibration_bins: equal-width bins of the calibration error.
        device: torch device for the computation (``"cpu"``, ``"cuda"``...); default CPU.
        chunk_size: replicates evaluated at once; default keeps about 4 million counts in memory.
        min_support: groups with at least one but fewer samples than this get a
            :class:`~monai_multifair.metrics.SmallGroupWarning` (default :data:`MIN_SUPPORT` = 30).

    Returns:
        A :class:`BootstrapResult`.

    Warns:
        SmallGroupWarning: some groups have fewer than ``min_support`` samples (names the smallest).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> p = rng.random(200); y = (rng.random(200) < p).astype(int); a = rng.integers(0, 2, 200)
        >>> res = bootstrap_fairness(y, p, sensitive_features=a, n_boot=100, random_state=0)
        >>> lower, upper = res.by_group_ci()
        >>> bool((lower["auc"] < upper["auc"]).all())
        True
    """
    n_boot, quantiles = _check_bootstrap_args(n_boot, ci_quantiles)
    pred = prepare_predictions(y_true, y_score, pos_label=pos_label, require_probabilities=True)
    groups = prepare_groups(sensitive_features, pred.n)
    min_group_size = check_min_group_size(min_group_size)
    min_support = check_int(min_support, "min_support", 1)
    alpha = check_alpha(alpha)
    patients = None if patient_ids is None else prepare_patient_ids(patient_ids, pred.n)
    point = point_estimate(
        pred,
        groups,
        threshold=check_threshold(threshold),
        alpha=alpha,
        min_group_size=min_group_size,
        calibration_bins=check_calibration_bins(calibration_bins),
        sample_weight=prepare_sample_weight(sample_weight, pred.n),
        device=device,
    )
    cohort = point.cohort
    chunk_size = (
        max(1, _CHUNK_ELEMENTS // cohort.n) if chunk_size is None else check_int(chunk_size, "chunk_size", 1)
    )

    seeds = bootstrap_seeds(n_boot, random_state)
    k = groups.num_groups
    overall = np.empty((n_boot, len(METRIC_NAMES)))
    by_group = np.empty((n_boot, k, len(METRIC_NAMES)))
    summary = np.empty((n_boot, len(SUMMARY_NAMES)))
    start = 0
    for rows in _count_chunks(seeds, cohort, patients, chunk_size):
        values = group_tensors.metrics_by_group(cohort, rows, min_group_size)
        summaries = group_tensors.cross_group_summaries(values, alpha)
        stacked = torch.stack([values[name] for name in METRIC_NAMES], dim=2).cpu().numpy()  # [b, K+1, M]
        stop = start + rows.shape[0]
        by_group[start:stop] = stacked[:, :k]
        overall[start:stop] = stacked[:, k]
        summary[start:stop] = torch.stack([summaries[name] for name in SUMMARY_NAMES], dim=1).cpu().numpy()
        start = stop
    result = BootstrapResult(
        n_boot=n_boot,
        ci_quantiles=quantiles,
        resampling="rows" if patients is None else "patients",
        group_index=groups.index,
        group_labels=groups.labels,
        metrics=METRIC_NAMES,
        overall_samples=overall,
        by_group_samples=by_group,
        summary_samples=summary,
        estimate=dict(point.summary),
        by_group_estimate=np.stack([point.by_group[name] for name in METRIC_NAMES], axis=1),
        overall_estimate=np.array([point.overall[name] for name in METRIC_NAMES]),
        alpha=alpha,
        group_counts=np.bincount(groups.ids, minlength=k),
        min_support=min_support,
    )
    _warn_small_groups(result)
    return result


def _warn_small_groups(result: BootstrapResult) -> None:
    """One :class:`SmallGroupWarning` naming the smallest groups and the flagged summary intervals."""
    small = result.small_groups
    if not small:
        return
    counts = dict(zip(result.group_labels, result.group_counts.tolist(), strict=True))
    smallest = sorted(small, key=lambda label: (counts[label], label))[:5]
    listed = ", ".join(f"{label!r} ({counts[label]})" for label in smallest)
    flags = result.summary_ci()["ci_flag"]
    flagged = [str(name) for name, flag in flags.items() if flag is not None]
    warnings.warn(
        f"{len(small)} of {len(result.group_labels)} group(s) have fewer than min_support="
        f"{result.min_support} samples (smallest: {listed}{', ...' if len(small) > 5 else ''}); their "
        "bootstrap intervals are wide and intervals of group-extreme statistics (worst-group AUC, gaps, "
        "ES-AUC, DPD, DEOdds) can exclude their own estimate; flagged as unreliable here: "
        + (", ".join(flagged) if flagged else "none")
        + " (see `ci_flag` of summary_ci() and gap_ci())",
        SmallGroupWarning,
        stacklevel=4,  # the caller of bootstrap_fairness (through keyword_only_features)
    )
