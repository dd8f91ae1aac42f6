"""Vectorised per-group metrics in torch for one weight row (point estimate) or many (bootstrap).

A :class:`Cohort` holds the per-sample terms of every metric on the device, with the samples ordered
by group so that each group is a contiguous slice. :func:`metrics_by_group` takes a matrix of row counts
``R`` of shape ``[B, N]`` (``B = 1`` and all ones for the point estimate; resample counts for ``B``
bootstrap replicates) and returns every metric for every group and overall as ``[B, K + 1]`` tensors
(column ``K`` is the whole cohort). All ratios are weighted sums, ``sum_i w_bi t_i`` over a group,
computed for all groups at once as one sparse-dense product (:meth:`Cohort.group_sums`); the AUC
comes from :class:`SortedAuc`, the weighted Mann-Whitney statistic of :func:`monai_multifair.core.functional.grouped_auc` with the sort shared by
all weight rows (the tests check the two agree). Point estimates and bootstrap replicates run the
same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from monai_multifair.metrics._inputs import METRIC_NAMES, Predictions, calibration_bin_ids, check_device

DTYPE = torch.float64

# Per-sample terms, in the column order of ``Cohort.terms``; calibration terms follow.
_ONE, _POS, _NEG, _SEL, _TP, _FP, _CORRECT = range(7)
_N_BASE_TERMS = 7


class SortedAuc:
    """Exact weighted ROC-AUC per group for many weight rows that share one set of scores.

    The Mann-Whitney statistic of :func:`~monai_multifair.core.functional.grouped_auc`,

    ``AUC_g = sum_{i pos, j neg in g} w_i w_j ([x_i > x_j] + 0.5 [x_i = x_j]) / (W+_g W-_g)``,

    but the samples are sorted by ``(group, score)`` once, at construction: a row of weights then costs
    one cumulative sum of the negative weights and a few gathers, ``O(N)`` instead of ``O(N log N)``.
    This is what makes a 1,000-replicate bootstrap cheap.

    Args:
        scores: ``[N]`` scores.
        positive: ``[N]`` bool, the positive class.
        groups: ``[N]`` long group ids in ``[0, num_groups)``, or ``None`` for one group.
        num_groups: ``K``.
    """

    def __init__(self, scores: Tensor, positive: Tensor, groups: Tensor | None, num_groups: int) -> None:
        n = scores.shape[0]
        device = scores.device
        g = torch.zeros(n, dtype=torch.long, device=device) if groups is None else groups.long()
        order = torch.argsort(scores, stable=True)
        order = order[torch.argsort(g[order], stable=True)]
        xs, gs, ps = scores[order], g[order], positive[order].bool()
        new_group = torch.ones(n, dtype=torch.bool, device=device)
        new_group[1:] = gs[1:] != gs[:-1]
        new_block = new_group.clone()
        new_block[1:] |= xs[1:] != xs[:-1]
        # neg_before[i]: number of negatives at sorted positions < i.
        neg_before = torch.cat([torch.zeros(1, dtype=torch.long, device=device), torch.cumsum(~ps, 0)])
        positions = torch.arange(n, device=device)
        block_starts = positions[new_block]
        block_ends = torch.cat([block_starts[1:], torch.tensor([n], device=device)])
        block_of = torch.cumsum(new_block.long(), 0) - 1
        pos_at = positions[ps]
        # For a positive in block [s, e): negatives strictly below = C[neg_before[s]], up to ties = C[neg_before[e]].
        self._lo = neg_before[block_starts[block_of[pos_at]]]
        self._hi = neg_before[block_ends[block_of[pos_at]]]
        self._has_ties = bool((self._hi - self._lo > 0).any())
        group_first = positions[new_group]
        self._group_ids = gs[group_first]  # groups that have samples, in sorted order
        self._group_start = neg_before[group_first]  # negatives before each group's first sample
        self._group_end = torch.cat([self._group_start[1:], neg_before[-1:]])
        self._pos_index = order[ps]
        self._neg_index = order[~ps]
        self._pos_onehot = torch.nn.functional.one_hot(gs[ps], num_groups).to(DTYPE)
        self.num_groups = num_groups

    def __call__(self, weights: Tensor) -> Tensor:
        """AUC per weight row and group: ``weights [B, N]`` (cohort order) -> ``[B, K]``, NaN if undefined."""
        b = weights.shape[0]
        w_pos = weights.index_select(1, self._pos_index)
        neg_cum = torch.cat(
            [
                torch.zeros((b, 1), dtype=DTYPE, device=weights.device),
                torch.cumsum(weights.index_select(1, self._neg_index), 1),
            ],
            dim=1,
        )
        below = neg_cum.index_select(1, self._lo)
        if self._has_ties:
            below = 0.5 * (below + neg_cum.index_select(1, self._hi))
        pos_total = w_pos @ self._pos_onehot  # [B, K]
        # Subtract the negatives of earlier groups once per group: sum_i w_i C[start_g] = W+_g C[start_g].
        start = torch.zeros((b, self.num_groups), dtype=DTYPE, device=weights.device)
        start[:, self._group_ids] = neg_cum.index_select(1, self._group_start)
        neg_total = torch.zeros_like(start)
        neg_total[:, self._group_ids] = neg_cum.index_select(1, self._group_end) - start[:, self._group_ids]
        u_stat = (w_pos * below) @ self._pos_onehot - pos_total * start
        valid = (pos_total > 0) & (neg_total > 0)
        denom = torch.where(valid, pos_total * neg_total, torch.ones_like(pos_total))
        return torch.where(valid, u_stat / denom, torch.full_like(u_stat, float("nan")))


@dataclass
class Cohort:
    """Per-sample metric terms on the device, samples ordered by group (see module docstring).

    Attributes:
        order: ``[N]`` numpy, original row of each cohort position.
        position: ``[N]`` numpy, cohort position of each original row (inverse of ``order``).
        bounds: ``[K + 1]`` numpy, group ``k`` occupies positions ``bounds[k]:bounds[k+1]``.
        terms: ``[N, T]`` per-sample terms (see ``_ONE`` ...), then one calibration term per bin.
        groups: ``[N]`` group ids (cohort order).
        sample_weight: ``[N]`` or ``None``.
        auc_scores: ``[N, S]`` score columns whose AUCs are averaged (1 binary, C multi-class).
        auc_targets: ``[N, S]`` bool one-vs-rest targets of those columns.
    """

    order: np.ndarray
    position: np.ndarray
    bounds: np.ndarray
    terms: Tensor
    groups: Tensor
    sample_weight: Tensor | None
    auc_scores: Tensor
    auc_targets: Tensor
    _plans: list[tuple[SortedAuc, SortedAuc]] | None = field(default=None, repr=False)
    _segments: Tensor | None = field(default=None, repr=False)
    _indicator: Tensor | None = field(default=None, repr=False)

    @property
    def num_groups(self) -> int:
        return len(self.bounds) - 1

    @property
    def n(self) -> int:
        return int(self.order.shape[0])

    @property
    def device(self) -> torch.device:
        return self.terms.device

    def _sparse(self, values: Tensor, num_terms: int) -> Tensor:
        """Sparse ``[num_terms * K, N]``: row ``t * K + g`` holds ``values[i, t]`` at the columns ``i`` of group ``g``."""
        n, k = self.n, self.num_groups
        rows = (torch.arange(num_terms, device=self.device)[None, :] * k + self.groups[:, None]).reshape(-1)
        cols = torch.arange(n, device=self.device).repeat_interleave(num_terms)
        return torch.sparse_coo_tensor(
            torch.stack([rows, cols]), values.reshape(-1), (num_terms * k, n), check_invariants=False
        ).coalesce()

    def group_sums(self, weights: Tensor) -> Tensor:
        """``S[b, t, g] = sum_{i in g} weights[b, i] * terms[i, t]`` for all groups at once: ``[B, T, K]``.

        One sparse-dense product (``N * T`` non-zeros) instead of a Python loop over the groups: each
        entry is the same dot product over the group's rows, so the values are those of the loop.
        """
        if self._segments is None:
            self._segments = self._sparse(self.terms, self.terms.shape[1])
        b, t = weights.shape[0], self.terms.shape[1]
        return torch.sparse.mm(self._segments, weights.T).reshape(t, self.num_groups, b).permute(2, 0, 1)

    def group_counts(self, rows: Tensor) -> Tensor:
        """Rows per group, ``[B, K]``: ``sum_{i in g} rows[b, i]``."""
        if self._indicator is None:
            ones = torch.ones((self.n, 1), dtype=DTYPE, device=self.device)
            self._indicator = self._sparse(ones, 1)
        return torch.sparse.mm(self._indicator, rows.T).T

    def plans(self) -> list[tuple[SortedAuc, SortedAuc]]:
        """Per AUC column: (per-group plan, overall plan), built on first use."""
        if self._plans is None:
            self._plans = [
                (
                    SortedAuc(self.auc_scores[:, s], self.auc_targets[:, s], self.groups, self.num_groups),
                    SortedAuc(self.auc_scores[:, s], self.auc_targets[:, s], None, 1),
                )
                for s in range(self.auc_scores.shape[1])
            ]
        return self._plans


def build_cohort(
    pred: Predictions,
    group_ids: np.ndarray,
    num_groups: int,
    *,
    threshold: float,
    calibration_bins: int,
    sample_weight: np.ndarray | None = None,
    device: torch.device | str | None = None,
) -> Cohort:
    """Lay out the per-sample terms of every metric, grouped, on ``device``.

    Predicted positive means ``p >= threshold``. Accuracy is ``[argmax == label]`` for multi-class
    scores, ``[yhat == y]`` otherwise.
    """
    device = check_device(device)
    order = np.argsort(group_ids, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(order.shape[0])
    bounds = np.searchsorted(group_ids[order], np.arange(num_groups + 1), side="left")
    y = pred.positive.astype(np.float64)
    yhat = (pred.p >= threshold).astype(np.float64)
    if pred.multiclass:
        correct = (np.argmax(pred.scores, axis=1) == pred.labels).astype(np.float64)
    else:
        correct = (yhat == y).astype(np.float64)
    base = np.stack([np.ones_like(y), y, 1.0 - y, yhat, y * yhat, (1.0 - y) * yhat, correct], axis=1)
    calib = np.zeros((y.shape[0], calibration_bins))
    calib[np.arange(y.shape[0]), calibration_bin_ids(pred.p, calibration_bins)] = y - pred.p
    terms = np.concatenate([base, calib], axis=1)[order]
    if pred.multiclass:
        auc_scores = pred.scores[order]
        auc_targets = pred.labels[order, None] == np.arange(pred.n_classes)[None, :]
    else:
        auc_scores = pred.p[order, None]
        auc_targets = pred.positive[order, None].astype(bool)

    def put(a: np.ndarray, dtype: torch.dtype = DTYPE) -> Tensor:
        return torch.as_tensor(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

    return Cohort(
        order=order,
        position=position,
        bounds=bounds,
        terms=put(terms),
        groups=put(group_ids[order], torch.long),
        sample_weight=None if sample_weight is None else put(sample_weight[order]),
        auc_scores=put(auc_scores),
        auc_targets=put(auc_targets, torch.bool),
    )


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.nan)


def _auc(cohort: Cohort, weights: Tensor) -> Tensor:
    """AUC ``[B, K + 1]``, the mean over AUC columns (one-vs-rest macro); NaN if any column is."""
    columns = [torch.cat([plan(weights), whole(weights)], dim=1) for plan, whole in cohort.plans()]
    return torch.stack(columns).mean(0)


def metrics_by_group(cohort: Cohort, rows: Tensor, min_group_size: int = 1) -> dict[str, Tensor]:
    """Every metric of :data:`METRIC_NAMES` per weight row, group and overall.

    Args:
        cohort: from :func:`build_cohort`.
        rows: ``[B, N]`` row counts in cohort order (ones for the data as observed).
        min_group_size: groups (and the cohort) with fewer rows are undefined (NaN) except ``count``.

    Returns:
        ``{name: [B, K + 1]}``; the last column is the whole cohort. ``count`` is the number of rows
        (NaN for an empty group, as fairlearn's intersections report it).
    """
    weights = rows if cohort.sample_weight is None else rows * cohort.sample_weight
    k = cohort.num_groups
    b = rows.shape[0]
    sums = torch.zeros((b, cohort.terms.shape[1], k + 1), dtype=DTYPE, device=cohort.device)
    sums[:, :, :k] = cohort.group_sums(weights)
    sums[:, :, k] = sums[:, :, :k].sum(2)
    if cohort.sample_weight is None:
        counts = sums[:, _ONE].clone()  # the weights are the row counts
    else:
        counts = torch.zeros((b, k + 1), dtype=DTYPE, device=cohort.device)
        counts[:, :k] = cohort.group_counts(rows)
        counts[:, k] = counts[:, :k].sum(1)
    n = sums[:, _ONE]
    out = {
        "auc": _auc(cohort, weights),
        "accuracy": _ratio(sums[:, _CORRECT], n),
        "tpr": _ratio(sums[:, _TP], sums[:, _POS]),
        "fpr": _ratio(sums[:, _FP], sums[:, _NEG]),
        "selection_rate": _ratio(sums[:, _SEL], n),
        "prevalence": _ratio(sums[:, _POS], n),
        "calibration_error": _ratio(sums[:, _N_BASE_TERMS:].abs().sum(1), n),
    }
    too_small = counts < min_group_size
    out = {name: torch.where(too_small, torch.nan, value) for name, value in out.items()}
    out["count"] = torch.where(counts > 0, counts, torch.nan)
    out["_pos"] = sums[:, _POS]
    out["_neg"] = sums[:, _NEG]
    out["_rows"] = counts
    return {name: out[name] for name in (*METRIC_NAMES, "_pos", "_neg", "_rows")}


def _gap(values: Tensor) -> Tensor:
    """``max - min`` over defined groups (dim 1); NaN when fewer than two groups are defined."""
    defined = ~torch.isnan(values)
    hi = torch.where(defined, values, -torch.inf).amax(1)
    lo = torch.where(defined, values, torch.inf).amin(1)
    return torch.where(defined.sum(1) >= 2, hi - lo, torch.nan)


def cross_group_summaries(metrics: dict[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """Cross-group summaries per weight row: each ``[B]``.

    * ``es_auc = AUC / (1 + alpha * sum_g |AUC - AUC_g|)`` over the groups with a defined AUC;
    * ``worst_group_auc = min_g AUC_g``; ``auc_gap = max_g AUC_g - min_g AUC_g``;
    * ``dpd`` = gap of the selection rate; ``deodds = max(gap of TPR, gap of FPR)``.

    Undefined groups are left out; a summary needs at least two defined groups (else NaN), and
    ``deodds`` is NaN when either gap is.
    """
    auc = metrics["auc"]
    overall, by_group = auc[:, -1], auc[:, :-1]
    defined = ~torch.isnan(by_group)
    enough = defined.sum(1) >= 2
    dispersion = torch.where(defined, (overall.unsqueeze(1) - by_group).abs(), 0.0).sum(1)
    es_auc = torch.where(enough, overall / (1.0 + alpha * dispersion), torch.nan)
    worst = torch.where(defined, by_group, torch.inf).amin(1)
    tpr_gap, fpr_gap = _gap(metrics["tpr"][:, :-1]), _gap(metrics["fpr"][:, :-1])
    deodds = torch.where(
        torch.isnan(tpr_gap) | torch.isnan(fpr_gap), torch.nan, torch.maximum(tpr_gap, fpr_gap)
    )
    return {
        "auc": overall,
        "es_auc": es_auc,
        "worst_group_auc": torch.where(enough, worst, torch.nan),
        "auc_gap": _gap(by_group),
        "dpd": _gap(metrics["selection_rate"][:, :-1]),
        "deodds": deodds,
    }
